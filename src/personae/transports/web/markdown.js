// A small, safe subset of Markdown for model output and card text. The text stays text: it is
// split into pieces and each piece goes into the DOM as a text node; only the pieces' wrappers
// (strong, em, code, pre, br) are elements we create. No HTML string is ever parsed.

const INLINE =
  /(`[^`\n]+`)|(\*\*[^*\n]+?\*\*)|(\*[^*\s][^*\n]*?\*)|((?<![\p{L}\p{N}])_[^_\n]+?_(?![\p{L}\p{N}]))|(\n)/gu;

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const parts = String(text).split("```");
  parts.forEach((part, i) => {
    const closedBlock = i % 2 === 1 && i < parts.length - 1;
    if (closedBlock) {
      const code = document.createElement("code");
      code.textContent = part.replace(/^[\w+-]*\n/, "");
      const pre = document.createElement("pre");
      pre.append(code);
      fragment.append(pre);
    } else {
      appendInline(fragment, i % 2 === 1 ? "```" + part : part);
    }
  });
  return fragment;
}

function appendInline(parent, text) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    const [token, code, bold, star, under] = match;
    if (match.index > last) parent.append(text.slice(last, match.index));
    if (code) parent.append(wrap("code", token.slice(1, -1), false));
    else if (bold) parent.append(wrap("strong", token.slice(2, -2), true));
    else if (star || under) parent.append(wrap("em", token.slice(1, -1), true));
    else parent.append(document.createElement("br"));
    last = match.index + token.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function wrap(tag, inner, nested) {
  const el = document.createElement(tag);
  if (nested) appendInline(el, inner);
  else el.textContent = inner;
  return el;
}
