// The progress bar of long computations, its Cancel button and the place errors are told.
import { h, replaceChildren } from "./dom";

export class ProgressView {
  readonly el: HTMLElement;
  private readonly bar: HTMLElement;
  private readonly text: HTMLElement;
  private readonly cancel: HTMLButtonElement;
  private readonly message: HTMLElement;

  constructor(onCancel: () => void) {
    this.bar = h("div");
    this.text = h("span", { class: "xai-progress-text" });
    this.cancel = h("button", { class: "xai-btn", id: "xai-cancel", onclick: onCancel }, "Cancel");
    this.message = h("span", { class: "xai-message", role: "alert" });
    this.el = h("div", { class: "xai-progress", id: "xai-progress" }, h("div", { class: "xai-bar" }, this.bar), this.text, this.cancel, this.message);
    this.show(0, 0, "");
  }

  /** done of total units; idle (bar and Cancel hidden) when nothing is pending. */
  show(done: number, total: number, label: string): void {
    const busy = total > 0 && done < total;
    this.bar.parentElement!.classList.toggle("xai-hidden", !busy);
    this.cancel.classList.toggle("xai-hidden", !busy);
    this.bar.style.width = `${total ? Math.round((100 * done) / total) : 0}%`;
    this.text.textContent = busy ? `${label} ${done} / ${total}` : "";
    this.el.dataset.busy = String(busy);
  }

  /** A sentence for the person, or '' to clear it. */
  tell(message: string): void {
    replaceChildren(this.message, message);
  }
}
