// DOM helpers. Every piece of data reaches the page through textContent or a property,
// never through innerHTML or an attribute that a browser would run: that is the whole XSS
// defence, and this module is the only place that creates elements from code.

/** A clone of <template id=...> and its [data-ref] nodes by name. */
export function cloneTemplate(id) {
  const template = document.getElementById(id);
  const fragment = template.content.cloneNode(true);
  return { fragment, refs: collect(fragment, "data-ref") };
}

/** The nodes under `root` carrying attribute `attr`, by its value. */
export function collect(root, attr) {
  const found = {};
  for (const node of root.querySelectorAll(`[${attr}]`)) found[node.getAttribute(attr)] = node;
  return found;
}

/** Set a node's text only when it differs, so a refresh rewrites nothing that did not change. */
export function setText(node, value) {
  const text = value === null || value === undefined ? "" : String(value);
  if (node.textContent !== text) node.textContent = text;
}

/** Set a plain attribute only when it differs (never an event handler attribute). */
export function setAttr(node, name, value) {
  if (/^on/i.test(name)) throw new Error(`refusing to set ${name}`);
  if (value === null || value === undefined || value === false) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
    return;
  }
  const text = value === true ? "" : String(value);
  if (node.getAttribute(name) !== text) node.setAttribute(name, text);
}

export function show(node, visible) {
  if (node.hidden === visible) node.hidden = !visible;
}

/** A new element with text content; `attrs` are plain attributes (see setAttr). */
export function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) setAttr(node, name, value);
  if (text) node.textContent = text;
  return node;
}

/**
 * Make `container`'s children match `items`, keyed by `keyOf(item)`: a node whose key stays
 * is kept (focus, checkboxes and selection survive) and only updated; new keys get a node
 * from `create()`, gone keys lose theirs; order follows `items`. Nothing is rebuilt, so a
 * refresh does not flicker.
 */
export function syncKeyed(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of Array.from(container.children)) existing.set(child.dataset.key, child);
  let cursor = container.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    let node = existing.get(key);
    if (node) {
      existing.delete(key);
    } else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    if (node !== cursor) container.insertBefore(node, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const node of existing.values()) node.remove();
}
