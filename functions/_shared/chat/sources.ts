import type { ChatContext, RetrievedChunk, RetrievedProduct } from './types.ts';

/**
 * A source as the model sees it: `[number]`. One numbering for the prompt, the
 * offline answer and citation extraction, so a marker always means the same
 * source: the chunks in retrieval order from 1, then the products.
 */
export type NumberedSource =
  | { number: number; kind: 'chunk'; chunk: RetrievedChunk }
  | { number: number; kind: 'product'; product: RetrievedProduct };

export function numberSources(context: ChatContext): NumberedSource[] {
  return [
    ...context.chunks.map((chunk, index) => ({ number: index + 1, kind: 'chunk' as const, chunk })),
    ...context.products.map((product, index) => ({
      number: context.chunks.length + index + 1,
      kind: 'product' as const,
      product,
    })),
  ];
}

/** "page 3" or "pages 3–4". */
export function pageLabel(chunk: RetrievedChunk): string {
  return chunk.pageStart === chunk.pageEnd ? `page ${chunk.pageStart}` : `pages ${chunk.pageStart}–${chunk.pageEnd}`;
}

/** Price, stock and link in one line: "39.90 EUR, 5 in stock, https://…". Unknown stock is left out. */
export function productFacts(product: RetrievedProduct): string {
  const facts = [`${product.price} ${product.currency}`];
  if (product.stock !== null) facts.push(product.stock > 0 ? `${product.stock} in stock` : 'out of stock');
  if (product.url) facts.push(product.url);
  return facts.join(', ');
}
