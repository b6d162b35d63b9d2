/**
 * The capped JSON body reader (functions/_shared/http.ts): a body over its
 * route's cap is a 413 `payload_too_large`, refused on its Content-Length
 * before a byte is read, or once the bytes read pass the cap (chunked, or a
 * Content-Length that lies), the rest left unread; a body exactly at the cap
 * is read. And the chat schema's cap on all messages' content together.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HttpError } from '../../functions/_shared/errors.ts';
import { DEFAULT_MAX_JSON_BYTES, readBodyText, readJson, readOptionalJson } from '../../functions/_shared/http.ts';
import {
  chatCompletionRequestSchema,
  MAX_CHAT_COMPLETION_BODY_BYTES,
  MAX_MESSAGE_CHARS,
  MAX_MESSAGES,
  MAX_TOTAL_CONTENT_CHARS,
} from '../../functions/_shared/openai-wire.ts';

const encoder = new TextEncoder();
const anyValue = z.unknown();

/** `{"pad":"xxx…"}` of exactly `bytes` bytes. */
function jsonOfSize(bytes: number): string {
  const frame = '{"pad":""}';
  return `{"pad":"${'x'.repeat(bytes - frame.length)}"}`;
}

interface Source {
  stream: ReadableStream<Uint8Array>;
  /** Bytes handed to the reader so far. */
  pulled: () => number;
  canceled: () => boolean;
}

/** More than any cap here: a reader that never stops fails its test instead of running out of memory. */
const ENDLESS_BYTES = 4 * 1024 * 1024;

/** `text` in chunks of `chunkBytes`, then (when `endless`) filler up to ENDLESS_BYTES: a chunked upload. */
function chunked(text: string, chunkBytes: number, endless = false): Source {
  const bytes = encoder.encode(text);
  let at = 0;
  let pulled = 0;
  let canceled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= (endless ? ENDLESS_BYTES : bytes.byteLength)) {
        controller.close();
        return;
      }
      const chunk = at < bytes.byteLength ? bytes.slice(at, at + chunkBytes) : new Uint8Array(chunkBytes).fill(0x78);
      at += chunk.byteLength;
      pulled += chunk.byteLength;
      controller.enqueue(chunk);
    },
    cancel() {
      canceled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => pulled, canceled: () => canceled };
}

function request(body: BodyInit, headers: Record<string, string> = {}): Request {
  return new Request('http://functions.test/x', {
    method: 'POST',
    headers,
    body,
    // Node's fetch needs this for a streamed request body.
    duplex: 'half',
  } as RequestInit);
}

async function refusal(promise: Promise<unknown>): Promise<HttpError> {
  const error = await promise.then(() => null, (thrown: unknown) => thrown);
  expect(error).toBeInstanceOf(HttpError);
  return error as HttpError;
}

describe('readJson and readOptionalJson cap the body', () => {
  it('reads a body of exactly the default cap, and refuses one byte more with 413 payload_too_large', async () => {
    const atCap = jsonOfSize(DEFAULT_MAX_JSON_BYTES);
    expect(encoder.encode(atCap).byteLength).toBe(DEFAULT_MAX_JSON_BYTES);
    const read = await readJson(request(atCap), z.object({ pad: z.string() }));
    expect(read.pad).toHaveLength(DEFAULT_MAX_JSON_BYTES - 10);

    const over = await refusal(readJson(request(jsonOfSize(DEFAULT_MAX_JSON_BYTES + 1)), anyValue));
    expect({ status: over.status, code: over.code }).toEqual({ status: 413, code: 'payload_too_large' });
    expect(over.message).toContain(String(DEFAULT_MAX_JSON_BYTES));
  });

  it('refuses a declared Content-Length over the cap before reading a byte', async () => {
    const source = chunked(jsonOfSize(2000), 100, true);
    const error = await refusal(readJson(request(source.stream, { 'content-length': '2000' }), anyValue, { maxBytes: 1000 }));
    expect(error.status).toBe(413);
    expect(source.pulled()).toBe(0);
  });

  it('stops a chunked body without Content-Length one chunk past the cap, and cancels the rest', async () => {
    const source = chunked('{"pad":"', 64, true);
    const error = await refusal(readJson(request(source.stream), anyValue, { maxBytes: 1000 }));
    expect({ status: error.status, code: error.code }).toEqual({ status: 413, code: 'payload_too_large' });
    expect(source.pulled()).toBeGreaterThan(1000);
    expect(source.pulled()).toBeLessThanOrEqual(1000 + 64);
    expect(source.canceled()).toBe(true);
  });

  it('counts the bytes that arrive, whatever Content-Length claimed', async () => {
    const source = chunked(jsonOfSize(5000), 512);
    const error = await refusal(readJson(request(source.stream, { 'content-length': '10' }), anyValue, { maxBytes: 1000 }));
    expect(error.status).toBe(413);
    expect(source.pulled()).toBeLessThanOrEqual(1000 + 512);
  });

  it('reads a chunked body exactly at the cap, across chunks and split UTF-8 characters', async () => {
    const text = `{"pad":"${'é'.repeat(496)}"}`;
    expect(encoder.encode(text).byteLength).toBe(1002);
    const read = await readJson(request(chunked(text, 7).stream), z.object({ pad: z.string() }), { maxBytes: 1002 });
    expect(read.pad).toBe('é'.repeat(496));
  });

  it('keeps readOptionalJson\'s empty body, and caps it like readJson', async () => {
    expect(await readOptionalJson(request(''), anyValue)).toBeUndefined();
    expect(await readOptionalJson(request(' {"a":1} '), z.object({ a: z.number() }), { maxBytes: 9 })).toEqual({ a: 1 });
    const error = await refusal(readOptionalJson(request(chunked(' '.repeat(50), 10).stream), anyValue, { maxBytes: 20 }));
    expect(error.status).toBe(413);
  });

  it('keeps 400 invalid_json and 422 invalid_request under the cap', async () => {
    expect((await refusal(readJson(request('{'), anyValue))).code).toBe('invalid_json');
    expect((await refusal(readJson(request('{"a":"b"}'), z.object({ a: z.number() })))).status).toBe(422);
  });

  it('reads text as req.text() does: UTF-8, a byte order mark dropped', async () => {
    expect(await readBodyText(request(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])))).toBe('{}');
  });
});

describe('chat completions: all messages\' content together is capped', () => {
  const message = (role: string, chars: number) => ({ role, content: 'a'.repeat(chars) });

  it('refuses content adding up past MAX_TOTAL_CONTENT_CHARS, system prompts counted, and takes it at the cap', () => {
    const perMessage = MAX_TOTAL_CONTENT_CHARS / 20;
    // The last message is the question (8,000 at most): the cap is reached by the ones before it.
    const atCap = [
      ...Array.from({ length: 19 }, () => message('system', perMessage)),
      message('assistant', perMessage - 10),
      message('user', 10),
    ];
    expect(atCap.reduce((sum, m) => sum + m.content.length, 0)).toBe(MAX_TOTAL_CONTENT_CHARS);
    expect(chatCompletionRequestSchema.safeParse({ model: 'm', messages: atCap }).success).toBe(true);
    const result = chatCompletionRequestSchema.safeParse({ model: 'm', messages: [message('system', 1), ...atCap] });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0].message).toContain(`at most ${MAX_TOTAL_CONTENT_CHARS} characters in all`);
  });

  it('fits any body within the content cap in MAX_CHAT_COMPLETION_BODY_BYTES, every character escaped', () => {
    // Every character \uXXXX-escaped (6 bytes), over as many messages as may come.
    const perMessage = Math.floor(MAX_TOTAL_CONTENT_CHARS / MAX_MESSAGES);
    expect(perMessage).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    const messages = Array.from({ length: MAX_MESSAGES }, (_, index) => ({
      role: index % 2 === 0 ? 'user' : 'assistant',
      content: '\u00e9'.repeat(perMessage),
    }));
    const escaped = JSON.stringify({ model: 'a-model-name', messages, stream: true, user: 'u'.repeat(200) })
      .replace(/\u00e9/g, '\\u00e9');
    expect(chatCompletionRequestSchema.safeParse(JSON.parse(escaped)).success).toBe(true);
    expect(encoder.encode(escaped).byteLength).toBeLessThan(MAX_CHAT_COMPLETION_BODY_BYTES - 1_000_000);
  });
});
