// The XAI tab. TensorBoard imports this module into the plugin's iframe and calls render().
import { App } from "./app";
import { injectStyle } from "./style";

export { ScatterPlot, HistogramPlot } from "./views/plots";
export { setBase } from "./api";

let app: App | null = null;

/** Draw the tab into document.body (TensorBoard calls this once per iframe). */
export async function render(): Promise<void> {
  injectStyle();
  document.body.replaceChildren();
  app = new App(document.body);
  await app.start();
}

/** The running tab (for the browser tests and the bench). */
export const current = (): App | null => app;
