import { CITATION_MARKER, isNoAnswer } from './escalation.ts';
import { numberSources } from './sources.ts';
import type { ChatContext } from './types.ts';

/** A cited document chunk, as stored with the message. */
export interface ChunkCitation {
  chunk_id: number;
  document_id: string;
  document_name: string;
  page_start: number;
  page_end: number;
}

/** A cited catalog product, as stored with the message. */
export interface ProductCitation {
  product_id: string;
  name: string;
}

export type Citation = ChunkCitation | ProductCitation;

/**
 * The sources an answer cites, in the order of their first marker, each once.
 * Markers that name no source (the model miscounted) are ignored.
 *
 * An answer with no valid marker that is not a "no answer" still came from the
 * sources (the prompt allows nothing else), so it cites the top source: the
 * best-scored chunk, or the first product when there are no chunks. A "no
 * answer" cites nothing. `noAnswer` is isNoAnswer's verdict when the caller
 * already has it (with the bot's contact), so an answer is not read twice.
 */
export function extractCitations(answer: string, context: ChatContext, noAnswer?: boolean): Citation[] {
  const sources = numberSources(context);
  const cited: number[] = [];
  for (const [marker] of answer.matchAll(CITATION_MARKER)) {
    for (const number of marker.slice(1, -1).split(/[,;]/u).map((part) => Number(part.trim()))) {
      if (number >= 1 && number <= sources.length && !cited.includes(number)) cited.push(number);
    }
  }
  if (cited.length === 0 && sources.length > 0 && !(noAnswer ?? isNoAnswer(answer))) cited.push(topSource(context));
  return cited.map((number) => {
    const source = sources[number - 1];
    if (source.kind === 'product') return { product_id: source.product.productId, name: source.product.name };
    const { chunk } = source;
    return {
      chunk_id: chunk.chunkId,
      document_id: chunk.documentId,
      document_name: chunk.documentName,
      page_start: chunk.pageStart,
      page_end: chunk.pageEnd,
    };
  });
}

/** The [n] of the best-scored chunk (the first of equals), else of the first product. */
function topSource(context: ChatContext): number {
  if (context.chunks.length === 0) return 1;
  let best = 0;
  context.chunks.forEach((chunk, index) => {
    if (chunk.score > context.chunks[best].score) best = index;
  });
  return best + 1;
}
