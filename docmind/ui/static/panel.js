// The side panel of the DocMind page that shows a cited document: any click on a link to the viewer
// (a citation [n] in an answer, a Sources entry, the Documents tab's "View") opens it here instead of
// leaving the app. Ctrl/Cmd/Shift-click still opens the viewer in a new browser tab. Pointing at a citation
// already loads its document in the (hidden) panel, so the click only has to show it.
(() => {
  const LINK = 'a[href*="/docmind/view/"]';
  let panel = null;

  function build() {
    panel = document.createElement("aside");
    panel.id = "docmind-viewer-panel";
    panel.setAttribute("aria-label", "Document viewer");
    panel.hidden = true;
    panel.innerHTML = `<div class="docmind-viewer-bar">
        <span class="docmind-viewer-heading">Document viewer</span>
        <a id="docmind-viewer-tab" target="_blank" rel="noopener">Open in a new browser tab</a>
        <button type="button" id="docmind-viewer-close" aria-label="Close the document viewer">✕</button></div>
      <iframe id="docmind-viewer-frame" title="The cited document"></iframe>`;
    document.body.append(panel);
    panel.querySelector("#docmind-viewer-close").addEventListener("click", close);
    return panel;
  }

  function close() {
    if (!panel || panel.hidden) return;
    panel.hidden = true;  // the document stays loaded: its next citation opens at once
  }

  function sameDocument(frame, url) {
    try {
      const shown = frame.contentWindow.location;
      return shown.pathname === new URL(url, location.href).pathname
        && typeof frame.contentWindow.docmindGo === "function";
    } catch {
      return false;
    }
  }

  function backToCitedPage(frame, url) {
    try {
      const cited = new URL(url, location.href).searchParams.get("page") || "1";
      const body = frame.contentDocument?.body;
      if (body?.dataset.ready === "yes" && body.dataset.page !== cited) frame.contentWindow.docmindGo?.(url);
    } catch {
      // not the viewer's page (yet): nothing to go back to
    }
  }

  function load(frame, url, clicked = false) {
    if (frame.dataset.url === url) {  // loading or showing it already (the user may have turned its pages)
      if (clicked) backToCitedPage(frame, url);
      return;
    }
    frame.dataset.url = url;
    if (sameDocument(frame, url)) frame.contentWindow.docmindGo(url);  // a PDF already open: no reload
    else frame.src = url;
  }

  window.docmindOpenViewer = (url) => {
    if (!url) return;
    const box = panel || build();
    load(box.querySelector("iframe"), url, true);
    box.querySelector("#docmind-viewer-tab").href = url;
    box.hidden = false;
    box.querySelector("#docmind-viewer-close").focus({preventScroll: true});
  };

  document.addEventListener("pointerover", (event) => {
    const link = event.target.closest?.(LINK);
    if (link && link.id !== "docmind-viewer-tab" && (!panel || panel.hidden)) {
      load((panel || build()).querySelector("iframe"), link.getAttribute("href"));
    }
  });

  document.addEventListener("click", (event) => {
    const link = event.target.closest?.(LINK);
    const modified = event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey;
    if (!link || link.id === "docmind-viewer-tab" || modified) return;
    event.preventDefault();
    event.stopPropagation();
    window.docmindOpenViewer(link.getAttribute("href"));
  }, true);

  document.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });

  // Once the chat has settled with citations in it, the latest one is loaded in the hidden panel (once per
  // page, while the panel has shown nothing yet), so that the first click on a citation opens at once.
  const PRELOAD_AFTER_MS = 1500;
  let settling = null;
  new MutationObserver(() => {
    clearTimeout(settling);
    settling = setTimeout(() => {
      if (panel?.querySelector("iframe").dataset.url) return;
      const links = document.querySelectorAll(`#docmind-chatbot ${LINK}`);
      const latest = links[links.length - 1];
      if (latest) load((panel || build()).querySelector("iframe"), latest.getAttribute("href"));
    }, PRELOAD_AFTER_MS);
  }).observe(document.body, {childList: true, subtree: true, characterData: true});

  // The chat's Copy button copies a message as written: give back plain [n] and drop the ⚠ markers' markup.
  const clipboard = navigator.clipboard;
  if (clipboard?.writeText) {
    const write = clipboard.writeText.bind(clipboard);
    clipboard.writeText = (text) => write(String(text)
      .replace(/<a class="docmind-cite" [^>]*>([^<]*)<\/a>/g, "$1")
      .replace(/ ?<span class="docmind-unsupported" [^>]*>⚠<span class="docmind-sr-only">[^<]*<\/span><\/span>/g, ""));
  }
})();
