// The comparison grid: rows are samples, columns are models x methods; every cell in sync.
import type { ModelRef } from "../types";
import { CellView, type CellOptions } from "./cell";
import { h } from "./dom";
import { cssColor } from "../theme";

export interface Column {
  model: ModelRef;
  method: string;
  methodLabel: string;
}

export interface GridOptions {
  rows: number[];
  columns: Column[];
  rowLabel: (index: number) => string;
  cell: (row: number, column: Column) => CellOptions;
  onRemoveRow: (index: number) => void;
  runColor: (run: string) => string;
}

/** Key of the cell at (sample index, column). */
export const cellKey = (index: number, c: Column): string => JSON.stringify([index, c.model.run, c.model.step, c.method]);

/** Key of a column: its model and method. */
export const columnKey = (c: Column): string => JSON.stringify([c.model.run, c.model.step, c.method]);

export class GridView {
  readonly el: HTMLTableElement;
  readonly cells = new Map<string, CellView>();
  private readonly badges = new Map<string, HTMLElement>();

  constructor(opts: GridOptions) {
    const head = h(
      "tr",
      {},
      h("th", {}, "sample"),
      ...opts.columns.map((c) =>
        h(
          "th",
          { title: `${c.model.run} at step ${c.model.step}, ${c.methodLabel}`, scope: "col" },
          h("span", { class: "xai-swatch", "aria-hidden": "true", "data-run": c.model.run, style: `background:${opts.runColor(c.model.run)}` }),
          `${c.model.run} `,
          h("span", { class: "xai-sub" }, `@${c.model.step}`),
          h("br"),
          c.methodLabel,
          this.badgeSlot(c),
        ),
      ),
    );
    const body = opts.rows.map((index) => {
      const cells = opts.columns.map((c) => {
        const view = new CellView(opts.cell(index, c));
        view.el.dataset.key = cellKey(index, c);
        this.cells.set(cellKey(index, c), view);
        return view.el;
      });
      const remove =
        opts.rows.length > 1
          ? h("button", { class: "xai-btn", title: "remove this row", "aria-label": `remove sample ${index} from the grid`, onclick: () => opts.onRemoveRow(index) }, "×")
          : null;
      return h("tr", { "data-index": index }, h("th", { class: "xai-rowhead", scope: "row" }, opts.rowLabel(index), h("br"), remove), ...cells);
    });
    this.el = h("table", { class: "xai-grid", id: "xai-grid" }, h("thead", {}, head), h("tbody", {}, ...body));
  }

  /** An empty place in a column's title for its sanity badge. */
  private badgeSlot(c: Column): HTMLElement {
    const slot = h("span", { class: "xai-badge-slot" });
    this.badges.set(columnKey(c), slot);
    return slot;
  }

  /** Put a badge (or nothing) into a column's title. */
  setBadge(c: Column, badge: HTMLElement | null): void {
    const slot = this.badges.get(columnKey(c));
    if (slot) slot.replaceChildren(...(badge ? [badge] : []));
  }

  forEach(fn: (cell: CellView) => void): void {
    this.cells.forEach(fn);
  }

  /** The grid drawn onto one canvas (cells' pictures with their column and row titles), for PNG export. */
  toCanvas(columns: Column[], rows: number[], rowLabel: (i: number) => string): HTMLCanvasElement {
    const first = this.cells.values().next().value as CellView | undefined;
    const cw = first ? first.canvas.width : 128;
    const ch = first ? first.canvas.height : 128;
    const pad = 8;
    const left = 90;
    const top = 36;
    const out = document.createElement("canvas");
    out.width = left + columns.length * (cw + pad) + pad;
    out.height = top + rows.length * (ch + pad) + pad;
    const ctx = out.getContext("2d")!;
    ctx.fillStyle = cssColor("--xai-surface");
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = cssColor("--xai-text");
    ctx.font = "11px Roboto, Arial, sans-serif";
    columns.forEach((c, j) => {
      const x = left + j * (cw + pad);
      ctx.fillText(`${c.model.run}@${c.model.step}`, x, 14, cw);
      ctx.fillText(c.methodLabel, x, 28, cw);
    });
    rows.forEach((index, i) => {
      const y = top + i * (ch + pad);
      ctx.fillText(rowLabel(index), 4, y + 14, left - 8);
      columns.forEach((c, j) => {
        const cell = this.cells.get(cellKey(index, c));
        if (cell) ctx.drawImage(cell.canvas, left + j * (cw + pad), y);
      });
    });
    return out;
  }
}
