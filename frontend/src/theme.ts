// Light or dark, as TensorBoard shows itself. TensorBoard (2.14 to 2.21) gives a plugin no message
// about its theme; it toggles the class `dark-mode` on its own <body>, which this same-origin iframe
// can read and watch. Without a TensorBoard page above, the browser's prefers-color-scheme decides.

export type Theme = "light" | "dark";

const DARK_QUERY = "(prefers-color-scheme: dark)";

/** TensorBoard's <body> above this iframe, or null (no parent, another origin, not TensorBoard). */
export function tensorBoardBody(win: Window = window): HTMLElement | null {
  try {
    if (win.parent === win) return null;
    const doc = win.parent.document;
    return doc.querySelector("tb-webapp") ? doc.body : null;
  } catch {
    return null; // a cross-origin parent throws on .document
  }
}

/** The theme TensorBoard's body class says, else the browser's colour-scheme preference. */
export function currentTheme(win: Window = window): Theme {
  const body = tensorBoardBody(win);
  if (body) return body.classList.contains("dark-mode") ? "dark" : "light";
  return win.matchMedia?.(DARK_QUERY).matches ? "dark" : "light";
}

/** Apply the theme now and whenever TensorBoard (or, without it, the browser) switches; returns a stop function. */
export function followTheme(apply: (theme: Theme) => void, win: Window = window): () => void {
  let last: Theme | null = null;
  const update = () => {
    const theme = currentTheme(win);
    if (theme !== last) apply((last = theme));
  };
  update();
  const body = tensorBoardBody(win);
  if (body) {
    const observer = new MutationObserver(update);
    observer.observe(body, { attributes: true, attributeFilter: ["class"] });
    return () => observer.disconnect();
  }
  const query = win.matchMedia?.(DARK_QUERY);
  query?.addEventListener("change", update);
  return () => query?.removeEventListener("change", update);
}

/** Set the document's theme attribute, which the stylesheet's colour variables key on. */
export function setDocumentTheme(theme: Theme, doc: Document = document): void {
  doc.documentElement.dataset.theme = theme;
}

/** A colour variable of the stylesheet, as the document resolves it now (canvases cannot read CSS). */
export function cssColor(name: string, el: Element = document.documentElement): string {
  return getComputedStyle(el).getPropertyValue(name).trim();
}
