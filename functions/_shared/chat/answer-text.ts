/**
 * The longest answer a bot stores (messages.content, private.chat_finish), in
 * characters as Postgres counts them: code points, not UTF-16 units.
 */
export const MAX_ANSWER_CHARS = 32000;

/**
 * A model's answer as it streams, kept storable: U+0000 dropped (Postgres
 * text cannot hold it) and at most MAX_ANSWER_CHARS kept. An answer that
 * would grow past that is `full`: the caller stops reading the model, since
 * what the client is sent and what is stored must be the same text.
 */
export class AnswerText {
  text = '';
  /** A delta did not fit whole: the answer is cut at MAX_ANSWER_CHARS. */
  full = false;
  private chars = 0;

  constructor(private readonly limit: number = MAX_ANSWER_CHARS) {}

  /** Appends what of `delta` fits and returns it (maybe ''); nothing once full. */
  append(delta: string): string {
    if (this.full) return '';
    const clean = delta.includes('\u0000') ? delta.replaceAll('\u0000', '') : delta;
    let end = 0;
    let kept = 0;
    while (end < clean.length && this.chars + kept < this.limit) {
      end += (clean.codePointAt(end) ?? 0) > 0xffff ? 2 : 1;
      kept += 1;
    }
    if (end < clean.length) this.full = true;
    const piece = clean.slice(0, end);
    this.text += piece;
    this.chars += kept;
    return piece;
  }
}
