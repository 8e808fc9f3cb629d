// An agreement matrix as a small heatmap table: every rank correlation printed in its cell, coloured by it.
import { agreementColor, fmt, textOn } from "../trust";
import { h } from "./dom";

/** A K x K table with `labels` on both sides, each value in a cell coloured from blue (1) over white (0) to red (-1). */
export function matrixTable(caption: string, labels: string[], matrix: (number | null)[][], id?: string): HTMLTableElement {
  const head = h("tr", {}, h("td", {}), ...labels.map((l) => h("th", { scope: "col" }, l)));
  const rows = matrix.map((row, i) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, labels[i] ?? String(i)),
      ...row.map((v, j) => {
        const bg = agreementColor(v);
        return h("td", { style: `background:${bg};color:${textOn(bg)}`, "data-value": v ?? "", title: `${labels[i]} vs ${labels[j]}: ρ = ${fmt(v)}` }, fmt(v));
      }),
    ),
  );
  return h("table", { class: "xai-matrix", id }, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, ...rows));
}
