export interface SseEvent {
  event: string;
  data: unknown;
}

/** A whole Server-Sent Events body as its events (comments skipped; `[DONE]` kept as text, OpenAI's end marker). */
export function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((frame) => frame.trim() !== '' && !frame.startsWith(':'))
    .map((frame) => {
      const lines = frame.split('\n');
      const event = lines.find((line) => line.startsWith('event: '))?.slice(7) ?? 'message';
      const data = lines.filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n');
      return { event, data: data === '[DONE]' ? data : JSON.parse(data) };
    });
}
