// The DocMind document viewer page: "Open original", and a PDF drawn with PDF.js at the cited page with the
// cited passage highlighted (the server says where the passage is among the page's text items).
// Other documents arrive as text with the passage already marked; the page only scrolls to it.

const HIGHLIGHT = "docmind-highlight";

const openButton = document.getElementById("docmind-open-original");
openButton?.addEventListener("click", async () => {
  const status = document.getElementById("docmind-open-status");
  openButton.disabled = true;
  try {
    const reply = await fetch(openButton.dataset.url, {method: "POST", headers: {"X-DocMind-Action": "open"}});
    const body = await reply.json().catch(() => ({}));
    status.textContent = body.message || (reply.ok ? "Opening…" : "The file could not be opened.");
  } catch {
    status.textContent = "The file could not be opened.";
  } finally {
    openButton.disabled = false;
  }
});

function ready(page) {
  document.body.dataset.ready = "yes";
  document.body.dataset.readyMs = String(Math.round(performance.now()));  // since the page's navigation began
  if (page) document.body.dataset.page = String(page);
  document.querySelector(`mark.${HIGHLIGHT}`)?.scrollIntoView({block: "center"});
}

const pdfRoot = document.getElementById("docmind-pdf");
if (pdfRoot) {
  showPdf(pdfRoot).catch((error) => {
    pdfRoot.textContent = `This PDF could not be shown: ${error.message || error}`;
    document.body.dataset.ready = "error";
  });
} else {
  ready(null);
}

async function showPdf(root) {
  // the worker starts loading now, in its own thread, while this page loads PDF.js itself
  const worker = new Worker(new URL("./pdfjs/pdf.worker.min.mjs", import.meta.url), {type: "module"});
  const pdfjs = await import("./pdfjs/pdf.min.mjs");
  pdfjs.GlobalWorkerOptions.workerPort = worker;
  root.innerHTML = `<nav class="docmind-pager" aria-label="Pages">
      <button type="button" id="docmind-previous">Previous page</button>
      <span id="docmind-page-label" role="status"></span>
      <button type="button" id="docmind-next">Next page</button></nav>
    <p class="docmind-note" id="docmind-locate-note" role="status" hidden></p>
    <div class="docmind-page"><canvas aria-hidden="true"></canvas><div class="textLayer"></div></div>`;
  const pdf = await pdfjs.getDocument({url: root.dataset.file, isEvalSupported: false}).promise;
  const clamp = (value) => Math.min(Math.max(parseInt(value, 10) || 1, 1), pdf.numPages);
  root.dataset.page = String(clamp(root.dataset.page));
  const label = root.querySelector("#docmind-page-label");
  const previous = root.querySelector("#docmind-previous");
  const next = root.querySelector("#docmind-next");
  let shown = Number(root.dataset.page);
  let task = null;
  let latest = 0;  // a page shown while another was still being drawn wins

  async function show(number) {
    const ticket = ++latest;
    shown = number;
    label.textContent = `Page ${number} of ${pdf.numPages}`;
    previous.disabled = number <= 1;
    next.disabled = number >= pdf.numPages;
    task?.cancel();
    const page = await pdf.getPage(number);
    if (ticket !== latest) return;
    const box = root.querySelector(".docmind-page");
    const layer = box.querySelector(".textLayer");
    const canvas = box.querySelector("canvas");
    const width = page.getViewport({scale: 1}).width;
    const scale = Math.min(Math.max((root.clientWidth - 8) / width, 0.5), 2);
    const viewport = page.getViewport({scale});
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.floor(viewport.width * ratio);
    canvas.height = Math.floor(viewport.height * ratio);
    canvas.style.width = `${Math.floor(viewport.width)}px`;
    canvas.style.height = `${Math.floor(viewport.height)}px`;
    box.style.width = canvas.style.width;
    box.style.height = canvas.style.height;
    layer.replaceChildren();
    layer.style.setProperty("--total-scale-factor", String(scale));
    task = page.render({canvasContext: canvas.getContext("2d"), viewport,
                        transform: ratio === 1 ? null : [ratio, 0, 0, ratio, 0, 0]});
    const content = await page.getTextContent();
    if (ticket !== latest) return;
    const asked = number === Number(root.dataset.page) && root.dataset.asked;
    // ask where the passage is while the page is drawn (the server matches it to the page's text items)
    const where = asked ? locate(content.items.filter((item) => item.str !== undefined).map((item) => item.str)) : null;
    const text = new pdfjs.TextLayer({textContentSource: content, container: layer, viewport});
    await text.render();
    if (ticket !== latest) return;
    const note = root.querySelector("#docmind-locate-note");
    note.hidden = true;
    if (where) {
      const found = await where;
      if (ticket !== latest) return;
      highlight(text.textDivs, found.ranges || []);
      note.textContent = found.note || (found.exact ? "" : "The passage's exact text differs here; the closest match is highlighted.");
      note.hidden = !note.textContent;
    }
    await task.promise.catch((error) => { if (error?.name !== "RenderingCancelledException") throw error; });
    if (ticket === latest) ready(number);
  }

  async function locate(items) {
    if (!root.dataset.passage) {
      return {ranges: [], note: "The cited passage is not in this document any more (it may have changed since the "
                                + "answer); this is the page it was on."};
    }
    const reply = await fetch(root.dataset.locate, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({page: Number(root.dataset.page), passage: root.dataset.passage, items})});
    return reply.ok ? reply.json() : {ranges: [], note: "The exact text of this passage could not be located on this page."};
  }

  previous.addEventListener("click", () => show(shown - 1));
  next.addEventListener("click", () => show(shown + 1));
  // another citation of this same PDF (from the app's side panel): move to it without loading the PDF again
  window.docmindGo = (href) => {
    const query = new URL(href, location.href).searchParams;
    root.dataset.page = String(clamp(query.get("page")));
    root.dataset.passage = query.get("passage") || "";
    root.dataset.asked = root.dataset.passage ? "yes" : "";
    document.body.dataset.ready = "";
    history.replaceState(null, "", href);
    return show(Number(root.dataset.page));
  };
  await show(Number(root.dataset.page));
}

function highlight(divs, ranges) {
  // ranges: [item, start, end] within the text of each item (one text node per item's span)
  for (const [item, start, end] of ranges) {
    const node = divs[item]?.firstChild;
    if (!node || node.nodeType !== Node.TEXT_NODE) continue;
    const marked = node.splitText(start);
    marked.splitText(end - start);
    const mark = document.createElement("mark");
    mark.className = HIGHLIGHT;
    marked.replaceWith(mark);
    mark.append(marked);
  }
}
