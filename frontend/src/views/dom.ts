// A tiny element builder shared by the views.

type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;
type Child = Node | string | null | undefined | false;

/** <tag attrs>children</tag>: 'on*' attributes become listeners, false/null ones are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
    else if (k === "checked") (el as HTMLInputElement).checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** Replace an element's children. */
export function replaceChildren(el: Element, ...children: Child[]): void {
  el.replaceChildren(...(children.filter((c) => c !== null && c !== undefined && c !== false) as (Node | string)[]));
}

/** Run `rebuild` (which replaces `el`'s children) and give the focus back to the control with the same id, so
 * a keyboard user stays where they were. */
export function keepFocus(el: Element, rebuild: () => void): void {
  const active = el.ownerDocument.activeElement;
  const id = active && el.contains(active) ? active.id : "";
  rebuild();
  if (id) (el.ownerDocument.getElementById(id) as HTMLElement | null)?.focus();
}
