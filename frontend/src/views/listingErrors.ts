// What of the logdir could not be read (a folder that cannot be listed, a manifest that is unreadable or invalid):
// the runs route says it, the tab shows it instead of leaving those runs silently out.
import type { ListingError } from "../types";
import { h, replaceChildren } from "./dom";

/** One line per error: "run: message" (a logdir-wide error has no run). */
export const listingErrorLines = (errors: ListingError[]): string[] => errors.map((e) => (e.run === null ? e.message : `${e.run}: ${e.message}`));

export class ListingErrorsView {
  readonly el: HTMLElement = h("div", { class: "xai-message xai-hidden", id: "xai-listing-errors", role: "alert" });

  /** Show the errors of the latest listing (hidden when there are none). */
  show(errors: ListingError[]): void {
    const lines = listingErrorLines(errors);
    this.el.classList.toggle("xai-hidden", !lines.length);
    replaceChildren(this.el, ...(lines.length ? [h("span", {}, "Part of the logdir could not be read:"), h("ul", {}, ...lines.map((l) => h("li", {}, l)))] : []));
  }
}
