// The rag page: ask (streamed answer, clickable citations), documents, eval reports. No build step.
"use strict";

const $ = (selector) => document.querySelector(selector);
const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("rag-api-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("rag-api-key", keyInput.value));

function headers(extra = {}) {
  const out = { ...extra };
  if (keyInput.value) out.Authorization = `Bearer ${keyInput.value}`;
  return out;
}

async function api(path, options = {}) {
  const reply = await fetch(path, { ...options, headers: headers(options.headers) });
  const body = reply.headers.get("content-type")?.includes("json") ? await reply.json() : await reply.text();
  if (!reply.ok) throw new Error(body?.error?.message || `${reply.status} ${reply.statusText}`);
  return body;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// tabs
document.querySelectorAll(".tab").forEach((tab) =>
  tab.addEventListener("click", () => {
    document.querySelectorAll(".tab, .panel").forEach((n) => n.classList.remove("active"));
    tab.classList.add("active");
    $(`#${tab.dataset.tab}`).classList.add("active");
    if (tab.dataset.tab === "documents") loadDocuments();
    if (tab.dataset.tab === "reports") loadReports();
  }),
);

// ask
let sources = [];
let question = "";

function renderAnswer(text) {
  const box = $("#answer");
  box.replaceChildren();
  for (const part of text.split(/(\[\d+\])/)) {
    const cited = part.match(/^\[(\d+)\]$/);
    if (cited) {
      const button = element("button", part, "cite");
      button.type = "button";
      button.dataset.source = cited[1];
      button.addEventListener("click", () => openPassage(Number(cited[1])));
      box.append(button);
    } else {
      box.append(document.createTextNode(part));
    }
  }
}

function words(text) {
  // Query words of two or more letters; Korean particles make exact words rare, so stems of 2+ syllables.
  return [...new Set((text.match(/[\p{L}\p{N}]{2,}/gu) || []).map((w) => (/[가-힣]/.test(w) ? w.slice(0, 2) : w)))];
}

function markWords(container, text, terms) {
  container.replaceChildren();
  if (!terms.length) return container.append(text);
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "giu");
  for (const piece of text.split(pattern)) {
    if (!piece) continue;
    container.append(pattern.test(piece) ? element("mark", piece) : document.createTextNode(piece));
    pattern.lastIndex = 0;
  }
}

function score(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

// the page, and whether its text came from OCR of a scan (worth checking against the page itself)
function where(hit) {
  const page = hit.page ? ` · page ${hit.page}` : "";
  return hit.ocr ? `${page} (OCR of a scan)` : page;
}

function openPassage(rank) {
  const hit = sources[rank - 1];
  if (!hit) return;
  $("#passage").hidden = false;
  $("#passage-title").textContent = `[${rank}] ${hit.title || hit.source}`;
  $("#passage-meta").textContent =
    `${hit.source}${where(hit)} · retrieval ${score(hit.retrieval_score)} ` +
    `(rank ${hit.retrieval_rank}) · rerank ${score(hit.rerank_sigmoid)} · final ${score(hit.final_score)}`;
  markWords($("#passage-text"), hit.text, words(question));
  $("#passage").scrollIntoView({ block: "nearest" });
}
$("#passage-close").addEventListener("click", () => ($("#passage").hidden = true));

function renderSources(extra) {
  sources = extra.sources || [];
  const list = $("#sources");
  list.replaceChildren();
  sources.forEach((hit, i) => {
    const item = element("li");
    item.append(element("span", hit.source, "path"), `${where(hit)} — ${hit.title || ""}`);
    if ((extra.flagged || []).includes(i + 1)) {
      item.append(element("div", "⚠ text addressed to an AI assistant was withheld from the model", "flag"));
    }
    item.addEventListener("click", () => openPassage(i + 1));
    list.append(item);
  });
  const notes = $("#notes");
  if (extra.abstained) {
    const korean = /[\uac00-\ud7a3]/.test(question);
    const note = korean
      ? "문서에서 답을 찾지 못했습니다. 가장 가까운 출처를 아래에 보여 드립니다."
      : "The documents do not answer this: the nearest sources are listed below.";
    notes.append(element("p", note, "abstained"));
  }
  for (const check of extra.sentence_checks || []) {
    if (check.supported) continue;
    const cited = check.cited.map((n) => `[${n}]`).join("") || "any source";
    notes.append(element("p", `⚠ not in ${cited}: ${check.missing.join(", ")} — ${check.sentence}`, "unsupported"));
  }
  for (const warning of extra.warnings || []) notes.append(element("p", `warning: ${warning}`));
  if (extra.error) notes.append(element("p", `error: ${extra.error}`, "error"));
}

$("#ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  question = $("#question").value.trim();
  if (!question) return;
  const button = $("#ask-button");
  button.disabled = true;
  $("#answer").replaceChildren();
  $("#notes").replaceChildren();
  $("#sources").replaceChildren();
  $("#passage").hidden = true;
  let text = "";
  try {
    const reply = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ model: "rag", stream: true, messages: [{ role: "user", content: question }] }),
    });
    if (!reply.ok) throw new Error((await reply.json()).error?.message || reply.statusText);
    const reader = reply.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) renderAnswer((text += delta));
        if (chunk.rag) renderSources(chunk.rag);
      }
    }
  } catch (error) {
    $("#notes").append(element("p", `error: ${error.message}`, "error"));
  } finally {
    button.disabled = false;
  }
});

// documents
async function loadDocuments() {
  try {
    const { documents } = await api("/v1/documents");
    const body = $("#document-table tbody");
    body.replaceChildren();
    for (const doc of documents) {
      const row = element("tr");
      for (const value of [doc.path, doc.title, doc.chunks, doc.ingested_at]) row.append(element("td", String(value)));
      const remove = element("button", "Remove");
      remove.addEventListener("click", async () => {
        const { ingest } = await api(`/v1/documents/${doc.id}`, { method: "DELETE" });
        summary(ingest);
        loadDocuments();
      });
      const cell = element("td");
      cell.append(remove);
      row.append(cell);
      body.append(row);
    }
  } catch (error) {
    $("#ingest-summary").textContent = `error: ${error.message}`;
  }
}

function summary(ingest) {
  $("#ingest-summary").textContent =
    `ingested ${ingest.ingested.length}, removed ${ingest.removed.length}, skipped ${ingest.skipped.length}; ` +
    `chunks added ${ingest.chunks_added}, removed ${ingest.chunks_removed}, total ${ingest.chunks_total} ` +
    `in ${ingest.seconds} s`;
}

$("#upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("#upload-file").files[0];
  if (!file) return;
  try {
    const { ingest } = await api(`/v1/documents?filename=${encodeURIComponent(file.name)}`, {
      method: "POST",
      body: file,
    });
    summary(ingest);
    loadDocuments();
  } catch (error) {
    $("#ingest-summary").textContent = `error: ${error.message}`;
  }
});

// reports
async function loadReports() {
  const list = $("#report-list");
  try {
    const { reports } = await api("/v1/reports");
    list.replaceChildren();
    if (!reports.length) list.append(element("li", "no reports: start rag serve with --reports DIR"));
    for (const report of reports) {
      const item = element("li", `${report.name} — ${report.dataset || ""}`);
      item.addEventListener("click", () => showReport(report));
      list.append(item);
    }
  } catch (error) {
    list.replaceChildren(element("li", `error: ${error.message}`));
  }
}

async function showReport(report) {
  const view = $("#report-view");
  view.replaceChildren(element("h2", report.name));
  view.append(element("pre", await api(`/v1/reports/${encodeURIComponent(report.name)}/report.md`)));
  if (report.plot) {
    const image = element("img");
    image.alt = `plot of ${report.name}`;
    const blob = await (await fetch(`/v1/reports/${encodeURIComponent(report.name)}/plot.png`, { headers: headers() })).blob();
    image.src = URL.createObjectURL(blob);
    view.append(image);
  }
}
