// The XAI tab. TensorBoard imports this module into the plugin's iframe and calls render().
import { App } from "./app";
import { injectStyle } from "./style";
import { followTheme, setDocumentTheme } from "./theme";

export { ScatterPlot, HistogramPlot } from "./views/plots";
export { setBase } from "./api";

let app: App | null = null;

/** Draw the tab into document.body (TensorBoard calls this once per iframe). */
export async function render(): Promise<void> {
  injectStyle();
  // TensorBoard's plugin_entry.html has neither; assistive technology reads both.
  document.documentElement.lang ||= "en";
  document.title ||= "XAI";
  document.body.replaceChildren();
  app = new App(document.body);
  followTheme((theme) => {
    setDocumentTheme(theme);
    app?.setTheme(theme);
  });
  await app.start();
}

/** The running tab (for the browser tests and the bench). */
export const current = (): App | null => app;
