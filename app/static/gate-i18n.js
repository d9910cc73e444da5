// The gate page's texts in the page's language. The page carries its dictionary (English text ->
// translation, app/views/gate.py) in <script id="gate-strings" type="application/json">; without
// one (node's tests), the English text. Placeholders are Python's: "%(name)s".

let strings = {};
if (typeof document !== "undefined") {
  const element = document.getElementById("gate-strings");
  if (element) strings = JSON.parse(element.textContent);
}

/** `text` translated, its %(name)s placeholders replaced by `values`. */
export function t(text, values = {}) {
  return (strings[text] || text).replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}
