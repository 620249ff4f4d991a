from docmind.cli import main

raise SystemExit(main())
