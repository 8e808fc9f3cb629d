// The tab's look: TensorBoard's font, spacing, grey panels and orange accent, in TensorBoard's light or
// dark theme (src/theme.ts sets html[data-theme]); every colour is a variable of the theme. Injected
// through a <style> element created by script (TensorBoard's CSP allows inline styles, not inline scripts).

const CSS = `
:root { color-scheme: light; --xai-bg: #fff; --xai-surface: #fff; --xai-panel: #f5f5f5; --xai-border: #e0e0e0; --xai-text: #212121; --xai-muted: #616161; --xai-accent: #f57c00; --xai-on-accent: #212121; --xai-bad: #c62828; --xai-good: #2e7d32; --xai-note: #bf360c; --xai-focus: #1a73e8; --xai-track: #e0e0e0; --xai-guide: #9e9e9e; --xai-shadow: rgba(0,0,0,.2); }
:root[data-theme="dark"] { color-scheme: dark; --xai-bg: #303030; --xai-surface: #424242; --xai-panel: #3a3a3a; --xai-border: #555; --xai-text: #fff; --xai-muted: #bdbdbd; --xai-accent: #f57c00; --xai-on-accent: #212121; --xai-bad: #ef9a9a; --xai-good: #a5d6a7; --xai-note: #ffb74d; --xai-focus: #8ab4f8; --xai-track: #616161; --xai-guide: #9e9e9e; --xai-shadow: rgba(0,0,0,.6); }
body { margin: 0; font-family: Roboto, "Helvetica Neue", Arial, sans-serif; font-size: 13px; color: var(--xai-text); background: var(--xai-bg); }
:focus-visible { outline: 2px solid var(--xai-focus); outline-offset: 2px; }
.xai-root { display: flex; flex-direction: column; gap: 12px; padding: 12px 16px; }
.xai-panel { background: var(--xai-panel); border: 1px solid var(--xai-border); border-radius: 4px; padding: 8px 12px; }
.xai-panel > h2 { margin: 0 0 8px; font-size: 14px; font-weight: 500; }
.xai-setup { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: flex-start; }
.xai-field { display: flex; flex-direction: column; gap: 4px; min-width: 160px; }
.xai-field > label, .xai-label { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--xai-muted); }
.xai-runs { max-height: 180px; overflow: auto; background: var(--xai-surface); border: 1px solid var(--xai-border); border-radius: 2px; padding: 4px; min-width: 240px; }
.xai-run { display: flex; align-items: center; gap: 6px; padding: 2px 0; flex-wrap: wrap; }
.xai-run-name { display: inline-flex; align-items: center; gap: 6px; }
.xai-swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; flex: none; margin-right: 4px; vertical-align: baseline; }
.xai-chip { border: 1px solid var(--xai-border); border-radius: 10px; background: var(--xai-surface); color: var(--xai-text); padding: 0 7px; font-size: 11px; cursor: pointer; line-height: 18px; }
.xai-chip[aria-pressed="true"] { background: var(--xai-accent); border-color: var(--xai-accent); color: var(--xai-on-accent); }
.xai-methods { display: flex; flex-direction: column; gap: 2px; max-height: 220px; overflow: auto; background: var(--xai-surface); border: 1px solid var(--xai-border); border-radius: 2px; padding: 4px 8px; min-width: 220px; }
.xai-family { font-size: 11px; color: var(--xai-muted); margin-top: 4px; }
.xai-method-params { display: flex; flex-direction: column; gap: 2px; margin: 0 0 4px 8px; font-size: 12px; max-width: 340px; }
.xai-method-params input[type=number] { width: 64px; }
.xai-warn { color: var(--xai-bad); font-size: 11px; margin-left: 22px; max-width: 260px; }
.xai-error { color: var(--xai-bad); font-size: 12px; max-width: 320px; white-space: normal; }
input[aria-invalid="true"] { border-color: var(--xai-bad); }
button.xai-btn { font: inherit; color: var(--xai-text); border: 1px solid var(--xai-border); background: var(--xai-surface); border-radius: 2px; padding: 3px 10px; cursor: pointer; }
button.xai-btn:hover { border-color: var(--xai-accent); }
button.xai-btn.xai-primary { background: var(--xai-accent); border-color: var(--xai-accent); color: var(--xai-on-accent); }
button.xai-btn:disabled { opacity: .5; cursor: default; }
input, select { font: inherit; color: var(--xai-text); background: var(--xai-surface); border: 1px solid var(--xai-border); border-radius: 2px; }
input[type=range] { accent-color: var(--xai-accent); }
input[type=checkbox] { accent-color: var(--xai-accent); }
.xai-toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; margin-bottom: 8px; }
.xai-grid { border-collapse: separate; border-spacing: 8px; margin: -8px; }
.xai-grid th { font-weight: 500; font-size: 12px; text-align: left; vertical-align: bottom; max-width: 260px; }
.xai-grid th .xai-sub { color: var(--xai-muted); font-weight: 400; }
.xai-grid th.xai-rowhead { font-size: 12px; font-weight: 400; color: var(--xai-muted); vertical-align: top; white-space: nowrap; }
.xai-cell { background: var(--xai-surface); border: 1px solid var(--xai-border); border-radius: 4px; padding: 6px; vertical-align: top; position: relative; }
.xai-cell canvas.xai-map { display: block; image-rendering: pixelated; cursor: crosshair; }
.xai-cell .xai-readout { font-size: 11px; color: var(--xai-muted); height: 14px; font-variant-numeric: tabular-nums; }
.xai-cell .xai-error { max-width: 220px; }
.xai-cell .xai-loading { color: var(--xai-muted); font-size: 12px; }
.xai-cell .xai-note { color: var(--xai-note); font-size: 11px; max-width: 220px; white-space: normal; }
.xai-preds { list-style: none; margin: 4px 0 0; padding: 0; font-size: 12px; font-variant-numeric: tabular-nums; }
.xai-preds li { display: flex; justify-content: space-between; gap: 8px; }
.xai-preds li.xai-true { font-weight: 500; }
.xai-mark { font-weight: 700; }
.xai-mark.xai-right { color: var(--xai-good); }
.xai-mark.xai-wrong { color: var(--xai-bad); }
.xai-legend { display: flex; flex-direction: column; font-size: 10px; color: var(--xai-muted); }
.xai-progress { display: flex; align-items: center; gap: 8px; min-height: 24px; }
.xai-bar { width: 220px; height: 6px; background: var(--xai-track); border-radius: 3px; overflow: hidden; }
.xai-bar > div { height: 100%; background: var(--xai-accent); width: 0; transition: width .2s; }
.xai-message { color: var(--xai-bad); }
.xai-suggest { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.xai-plot { position: relative; background: var(--xai-surface); border: 1px solid var(--xai-border); }
.xai-plot canvas, .xai-plot svg { position: absolute; left: 0; top: 0; }
.xai-plot svg text { fill: var(--xai-text); }
.xai-plot svg .xai-quadrant { stroke: var(--xai-surface); }
.xai-plot svg .xai-guide { stroke: var(--xai-guide); }
.xai-tooltip { position: absolute; pointer-events: none; background: var(--xai-surface); color: var(--xai-text); border: 1px solid var(--xai-border); border-radius: 3px; padding: 6px; font-size: 11px; box-shadow: 0 2px 6px var(--xai-shadow); z-index: 5; white-space: nowrap; }
.xai-tooltip img { display: block; width: 64px; height: 64px; image-rendering: pixelated; margin-bottom: 4px; }
.xai-selection { max-height: 300px; overflow: auto; min-width: 220px; font-size: 12px; }
.xai-selection table { border-collapse: collapse; }
.xai-selection td, .xai-selection th { padding: 1px 6px; text-align: left; }
.xai-timeline { display: flex; flex-direction: column; gap: 6px; align-items: flex-start; }
.xai-hidden { display: none !important; }
.xai-sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.xai-empty { color: var(--xai-muted); }
.xai-classlist { width: 200px; }
.xai-trust-part { margin-top: 8px; }
.xai-trust-part > h3 { margin: 4px 0 6px; font-size: 13px; font-weight: 500; }
.xai-intro { margin: 0; max-width: 720px; }
.xai-rank { border-collapse: collapse; background: var(--xai-surface); font-size: 12px; font-variant-numeric: tabular-nums; margin-top: 6px; }
.xai-rank caption { caption-side: top; text-align: left; color: var(--xai-muted); padding: 0 0 4px; max-width: 720px; }
.xai-rank th, .xai-rank td { border: 1px solid var(--xai-border); padding: 2px 8px; text-align: left; vertical-align: top; }
.xai-rank th .xai-sub { color: var(--xai-muted); font-weight: 400; font-size: 11px; }
.xai-rank .xai-chosen { font-weight: 700; }
.xai-rank tr.xai-baseline { font-style: italic; color: var(--xai-muted); }
.xai-explain { max-width: 720px; margin: 6px 0 0; }
.xai-after-table { margin-top: 6px; }
.xai-verdict { max-width: 760px; border-left: 3px solid var(--xai-accent); padding: 2px 8px; margin: 6px 0; background: var(--xai-surface); }
.xai-verdict p { margin: 2px 0; }
.xai-rank th .xai-badge { margin-left: 6px; }
.xai-badge { display: inline-block; margin-top: 2px; padding: 0 6px; border-radius: 9px; border: 1px solid var(--xai-note); color: var(--xai-note); font-size: 11px; font-weight: 500; white-space: normal; }
.xai-badge-slot { display: block; }
.xai-score-wrap { position: relative; }
.xai-score { font-size: 11px; font-variant-numeric: tabular-nums; cursor: help; max-width: 240px; }
.xai-score.xai-score-good > span { color: var(--xai-good); }
.xai-score.xai-score-bad > span { color: var(--xai-bad); }
.xai-curve-popup { position: absolute; left: 0; top: 100%; z-index: 6; background: var(--xai-surface); color: var(--xai-text); border: 1px solid var(--xai-border); border-radius: 3px; padding: 4px 6px; font-size: 10px; box-shadow: 0 2px 6px var(--xai-shadow); width: 140px; }
.xai-curve .xai-curve-frame { fill: none; stroke: var(--xai-border); }
.xai-curve .xai-curve-map { fill: none; stroke: var(--xai-accent); stroke-width: 2; }
.xai-curve .xai-curve-random { fill: none; stroke: var(--xai-muted); stroke-width: 1.5; stroke-dasharray: 3 2; }
.xai-matrices { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; margin-top: 6px; }
.xai-matrices > .xai-label { flex-basis: 100%; }
.xai-matrix { border-collapse: collapse; font-size: 11px; font-variant-numeric: tabular-nums; background: var(--xai-surface); }
.xai-matrix caption { caption-side: top; text-align: left; font-weight: 500; padding-bottom: 2px; }
.xai-matrix th { font-weight: 400; color: var(--xai-text); padding: 2px 4px; text-align: left; max-width: 120px; }
.xai-matrix td { width: 44px; height: 24px; text-align: center; border: 1px solid var(--xai-surface); }
`;

/** Add the tab's stylesheet to the document once. */
export function injectStyle(doc: Document = document): void {
  if (doc.getElementById("xai-style")) return;
  const style = doc.createElement("style");
  style.id = "xai-style";
  style.textContent = CSS;
  doc.head.appendChild(style);
}
