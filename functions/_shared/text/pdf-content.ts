/**
 * How much drawing a PDF page asks for, measured before pdf.js reads it.
 * pdf.js parses a page's content streams (and the form XObjects they may
 * draw) in one go that no timer can interrupt: a 196 KB page whose stream
 * inflates to 200 MB of `q Q` took 18 s of CPU, and the platform stops a step
 * after 2 s, so the document would fail with no reason given. Here those
 * streams are found with pdf-lib and decoded with a bound on their output;
 * a page past the bound fails the document, before pdf.js is asked to read it.
 *
 * What cannot be measured is left to pdf.js as before: a file pdf-lib cannot
 * parse, an encrypted one (its streams decrypt only in pdf.js), a page pdf.js
 * names by no object.
 */
import { Unzlib } from 'fflate';
import { concatBytes } from '../bytes.ts';
import { UnreadableFileError } from './document.ts';

/** A printed page's text and graphics take some kilobytes; a detailed vector map a few megabytes. */
export const MAX_PAGE_CONTENT_BYTES = 8 * 1024 * 1024;

export const pageTooComplex = (page: number) =>
  new UnreadableFileError(
    `Page ${page} of the PDF is too complex to read: its drawing instructions take more than ${MAX_PAGE_CONTENT_BYTES / 1024 / 1024} MB.`,
  );

/** Deflate expands at most about 1,032:1, so one slice inflates to some 16 MB at most before the count is checked. */
const SLICE_BYTES = 16 * 1024;

/** pdf.js also takes the abbreviations of inline images in streams. */
const FILTER_NAMES: Record<string, string> = {
  Fl: 'FlateDecode',
  LZW: 'LZWDecode',
  AHx: 'ASCIIHexDecode',
  A85: 'ASCII85Decode',
  RL: 'RunLengthDecode',
};

type PdfLib = typeof import('pdf-lib');
type PdfObject = import('pdf-lib').PDFObject;

export interface PageContentMeter {
  /** Throws pageTooComplex when the page (pdf.js's object for it) draws more than the bound. */
  check(page: number, ref: { num: number; gen: number } | null | undefined): void;
}

/** A stream's decoded size, and the XObjects it draws (`/Name Do`) with how often. */
interface Drawing {
  bytes: number;
  draws: Map<string, number>;
}

/** An operand `/Name` then the operator `Do`, in PDF's delimiters. */
const DO = /\/([^\s/[\]()<>{}%]+)\s*Do(?![^\s/[\]()<>{}%])/g;

/** A meter for the document, or null when pdf-lib cannot see its streams as pdf.js will. */
export async function pageContentMeter(bytes: Uint8Array): Promise<PageContentMeter | null> {
  const lib = await import('pdf-lib');
  let pdf: import('pdf-lib').PDFDocument;
  try {
    pdf = await lib.PDFDocument.load(bytes, {
      ignoreEncryption: true,
      updateMetadata: false,
      throwOnInvalidObject: false,
      parseSpeed: lib.ParseSpeeds.Fastest,
    });
  } catch {
    return null;
  }
  if (pdf.isEncrypted) return null;
  const context = pdf.context;
  // By object, for the step: pages that share a stream (a letterhead, a form) decode it once.
  const streams = new Map<string, Drawing>();
  const forms = new Map<string, number>();

  const stream = (object: PdfObject | undefined): Drawing => {
    const key = object instanceof lib.PDFRef ? object.tag : undefined;
    const known = key === undefined ? undefined : streams.get(key);
    if (known) return known;
    const resolved = object instanceof lib.PDFRef ? context.lookup(object) : object;
    const drawing = resolved instanceof lib.PDFRawStream ? decode(lib, context, resolved) : { bytes: 0, draws: new Map() };
    if (key !== undefined) streams.set(key, drawing);
    return drawing;
  };

  /**
   * What drawing these streams costs: their bytes, and each form they draw
   * as often as they draw it (pdf.js reads a form's stream at every `Do`).
   * Counting stops once past the bound.
   */
  const cost = (parts: PdfObject[], resources: PdfObject | undefined, open: Set<string>): number => {
    let total = 0;
    const draws = new Map<string, number>();
    for (const part of parts) {
      const drawing = stream(part);
      total += drawing.bytes;
      if (total > MAX_PAGE_CONTENT_BYTES) return total;
      for (const [name, times] of drawing.draws) draws.set(name, (draws.get(name) ?? 0) + times);
    }
    const xobjects = context.lookupMaybe(context.lookupMaybe(resources, lib.PDFDict)?.get(lib.PDFName.of('XObject')), lib.PDFDict);
    for (const [name, times] of draws) {
      const entry = xobjects?.get(lib.PDFName.of(name));
      if (!(entry instanceof lib.PDFRef) || open.has(entry.tag)) continue;
      total += times * formCost(entry, resources, open);
      if (total > MAX_PAGE_CONTENT_BYTES) return total;
    }
    return total;
  };

  const formCost = (ref: import('pdf-lib').PDFRef, inherited: PdfObject | undefined, open: Set<string>): number => {
    const known = forms.get(ref.tag);
    if (known !== undefined) return known;
    const form = context.lookup(ref);
    if (!(form instanceof lib.PDFRawStream) || form.dict.get(lib.PDFName.of('Subtype')) !== lib.PDFName.of('Form')) return 0;
    open.add(ref.tag);
    const own = form.dict.get(lib.PDFName.of('Resources'));
    const total = cost([ref], own ?? inherited, open);
    open.delete(ref.tag);
    // A form without resources of its own takes its page's, so its cost is the page's to know.
    if (own !== undefined) forms.set(ref.tag, total);
    return total;
  };

  return {
    check(page, ref) {
      if (!ref) return;
      let total: number;
      try {
        total = pageCost(ref);
      } catch {
        // pdf-lib read the page differently from pdf.js (a broken object): pdf.js decides, as before.
        return;
      }
      if (total > MAX_PAGE_CONTENT_BYTES) throw pageTooComplex(page);
    },
  };

  function pageCost(ref: { num: number; gen: number }): number {
    const node = context.lookup(lib.PDFRef.of(ref.num, ref.gen));
    if (!(node instanceof lib.PDFDict)) return 0;
    const resources = node instanceof lib.PDFPageLeaf ? node.Resources() : node.get(lib.PDFName.of('Resources'));
    const contents = node.get(lib.PDFName.of('Contents'));
    const listed = contents instanceof lib.PDFRef ? context.lookup(contents) : contents;
    const parts = listed instanceof lib.PDFArray ? listed.asArray() : contents === undefined ? [] : [contents];
    return cost(parts, resources, new Set());
  }
}

/**
 * The stream with its filters applied, as far as the bound. Every filter
 * stage is bounded (a stage past the bound means a larger page); data a stage
 * cannot decode ends it there, as pdf.js reads a broken stream up to the
 * break. A filter pdf-lib does not know (an image codec) leaves the bytes as
 * they are.
 */
function decode(lib: PdfLib, context: import('pdf-lib').PDFContext, stream: import('pdf-lib').PDFRawStream): Drawing {
  const filter = stream.dict.lookup(lib.PDFName.of('Filter'));
  const parms = stream.dict.lookup(lib.PDFName.of('DecodeParms'));
  const stages: { name: string; parms: PdfObject | undefined }[] = [];
  if (filter instanceof lib.PDFName) {
    stages.push({ name: filter.decodeText(), parms });
  } else if (filter instanceof lib.PDFArray) {
    for (let index = 0; index < filter.size(); index++) {
      const name = filter.lookup(index);
      if (!(name instanceof lib.PDFName)) break;
      stages.push({ name: name.decodeText(), parms: parms instanceof lib.PDFArray ? parms.lookup(index) : undefined });
    }
  }
  let data = stream.contents;
  for (const stage of stages) {
    const name = FILTER_NAMES[stage.name] ?? stage.name;
    if (name === 'FlateDecode') {
      data = inflateBounded(data);
    } else if (PDF_LIB_FILTERS.has(name)) {
      const dict = context.obj({ Filter: name });
      if (stage.parms instanceof lib.PDFDict) dict.set(lib.PDFName.of('DecodeParms'), stage.parms);
      data = readBounded(lib.decodePDFRawStream(lib.PDFRawStream.of(dict, data)));
    } else {
      break;
    }
    if (data.length > MAX_PAGE_CONTENT_BYTES) return { bytes: data.length, draws: new Map() };
  }
  const draws = new Map<string, number>();
  for (const [, name] of new TextDecoder('latin1').decode(data).matchAll(DO)) draws.set(name, (draws.get(name) ?? 0) + 1);
  return { bytes: data.length, draws };
}

/** Filters pdf-lib decodes a block at a time (its Flate decodes a whole deflate block, of any size, at once). */
const PDF_LIB_FILTERS = new Set(['LZWDecode', 'ASCIIHexDecode', 'ASCII85Decode', 'RunLengthDecode']);

function inflateBounded(data: Uint8Array): Uint8Array {
  return collectBounded((emit) => {
    const inflater = new Unzlib(emit);
    for (let offset = 0; offset < data.length; offset += SLICE_BYTES) {
      inflater.push(data.subarray(offset, offset + SLICE_BYTES), offset + SLICE_BYTES >= data.length);
    }
  });
}

function readBounded(stream: { getBytes(length: number): Uint8Array | Uint8ClampedArray }): Uint8Array {
  return collectBounded((emit) => {
    for (let bytes = stream.getBytes(SLICE_BYTES); bytes.length > 0; bytes = stream.getBytes(SLICE_BYTES)) {
      emit(new Uint8Array(bytes));
    }
  });
}

/** Runs the decoder, keeping its output until it ends, fails or passes the bound (then the count is what matters). */
function collectBounded(run: (emit: (chunk: Uint8Array) => void) => void): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    run((chunk) => {
      total += chunk.length;
      parts.push(chunk);
      if (total > MAX_PAGE_CONTENT_BYTES) throw new Error('past the bound');
    });
  } catch {
    // Past the bound, or broken data, which ends the stream there as it does in pdf.js.
  }
  return concatBytes(parts);
}
