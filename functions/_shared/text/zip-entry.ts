/**
 * One entry of a zip archive, inflated with a hard bound on what it may
 * expand to. The sizes an archive declares are not trusted: a Word file whose
 * header understates its body would make fflate's unzipSync inflate all of it
 * (CPU until the platform stops the step) into a buffer of the declared size,
 * silently cutting the text short. Here the compressed bytes are fed to the
 * inflater a slice at a time and the output counted, so inflating stops at
 * the bound, whatever the header says.
 *
 * The entry is found through the central directory, as unzip tools do (the
 * local headers' sizes are zero in archives written with data descriptors).
 * An entry with Zip64 sizes or offsets is refused: a 25 MB upload needs none.
 */
import { Inflate } from 'fflate';
import { concatBytes } from '../bytes.ts';

export class ZipEntryError extends Error {}

/** The entry expands past the bound: by the size it declares, or (declared false) as it inflates. */
export class ZipEntryTooLarge extends Error {
  constructor(readonly bytes: number, readonly declared: boolean) {
    super(`the entry expands to ${declared ? '' : 'more than '}${bytes} bytes`);
  }
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;
/** Deflate expands at most about 1,032:1, so one slice inflates to some 16 MB at most before the count is checked. */
const SLICE_BYTES = 16 * 1024;

const u16 = (bytes: Uint8Array, at: number) => bytes[at] | (bytes[at + 1] << 8);
const u32 = (bytes: Uint8Array, at: number) =>
  (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;

function endOfCentralDirectory(bytes: Uint8Array): number {
  // The record is 22 bytes plus a comment of at most 65,535.
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--) {
    if (u32(bytes, at) === EOCD) return at;
  }
  throw new ZipEntryError('no end of central directory');
}

interface EntryLocation {
  compression: number;
  compressedBytes: number;
  declaredBytes: number;
  dataStart: number;
}

function locate(bytes: Uint8Array, name: string): EntryLocation | null {
  const eocd = endOfCentralDirectory(bytes);
  const entries = u16(bytes, eocd + 10);
  let at = u32(bytes, eocd + 16);
  const wanted = new TextEncoder().encode(name);
  for (let index = 0; index < entries; index++) {
    if (at + 46 > bytes.length || u32(bytes, at) !== CENTRAL) throw new ZipEntryError('a broken central directory');
    const nameBytes = u16(bytes, at + 28);
    const next = at + 46 + nameBytes + u16(bytes, at + 30) + u16(bytes, at + 32);
    const entryName = bytes.subarray(at + 46, at + 46 + nameBytes);
    if (entryName.length === wanted.length && entryName.every((byte, i) => byte === wanted[i])) {
      const compressedBytes = u32(bytes, at + 20);
      const declaredBytes = u32(bytes, at + 24);
      const local = u32(bytes, at + 42);
      if (compressedBytes === 0xffffffff || declaredBytes === 0xffffffff || local === 0xffffffff) {
        throw new ZipEntryError('a zip64 entry');
      }
      if (local + 30 > bytes.length || u32(bytes, local) !== LOCAL) throw new ZipEntryError('a broken local header');
      const dataStart = local + 30 + u16(bytes, local + 26) + u16(bytes, local + 28);
      if (dataStart + compressedBytes > bytes.length) throw new ZipEntryError('a truncated entry');
      return { compression: u16(bytes, at + 10), compressedBytes, declaredBytes, dataStart };
    }
    at = next;
  }
  return null;
}

/** The entry's bytes, or null when the archive has no such entry. */
export function readZipEntry(bytes: Uint8Array, name: string, maxBytes: number): Uint8Array | null {
  const entry = locate(bytes, name);
  if (!entry) return null;
  if (entry.declaredBytes > maxBytes) throw new ZipEntryTooLarge(entry.declaredBytes, true);
  const data = bytes.subarray(entry.dataStart, entry.dataStart + entry.compressedBytes);
  if (entry.compression === STORED) {
    if (data.length > maxBytes) throw new ZipEntryTooLarge(data.length, false);
    return data.slice();
  }
  if (entry.compression !== DEFLATED) throw new ZipEntryError(`compression method ${entry.compression}`);

  const parts: Uint8Array[] = [];
  let total = 0;
  const inflater = new Inflate((chunk) => {
    total += chunk.length;
    if (total > maxBytes) throw new ZipEntryTooLarge(maxBytes, false);
    parts.push(chunk);
  });
  // A truncated stream is refused by the inflater at the final push; an empty one never gets there.
  if (data.length === 0) throw new ZipEntryError('no compressed data');
  try {
    for (let offset = 0; offset < data.length; offset += SLICE_BYTES) {
      inflater.push(data.subarray(offset, offset + SLICE_BYTES), offset + SLICE_BYTES >= data.length);
    }
  } catch (error) {
    if (error instanceof ZipEntryTooLarge) throw error;
    throw new ZipEntryError('corrupt compressed data');
  }
  return concatBytes(parts);
}
