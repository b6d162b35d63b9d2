import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';
import { startTelegramStub, type TelegramStub, uniqueBotToken } from '../support/telegram-stub.ts';
import { startTestStack, type TestStack } from './support.ts';

export interface StubbedChatStack {
  stack: TestStack;
  sql: Sql;
  /** OpenAI's chat wire format on a local port (no retries, so a failure shows at once). */
  stub: OpenAiStub;
  telegram: TelegramStub;
}

/** A test stack whose model and Telegram are local stubs speaking those services' wire formats. */
export async function startStubbedChatStack(): Promise<StubbedChatStack> {
  const stub = await startOpenAiStub({ apiKey: 'sk-test-chat' });
  const telegram = await startTelegramStub({ token: uniqueBotToken() });
  const stack = await startTestStack({
    env: {
      OPENAI_API_KEY: 'sk-test-chat',
      OPENAI_BASE_URL: stub.baseURL,
      OPENAI_MAX_RETRIES: '0',
      TELEGRAM_API_BASE_URL: telegram.baseUrl,
    },
  });
  return { stack, sql: createSql(stack.dbUrl, { max: 1 }), stub, telegram };
}

/** After a file's tests: deletes its orgs (their rows cascade), then stops what startStubbedChatStack started. */
export async function stopStubbedChatStack(chat: Partial<StubbedChatStack>, orgIds: string[]): Promise<void> {
  if (chat.sql && orgIds.length > 0) await chat.sql`delete from public.organizations where id = any(${orgIds}::uuid[])`;
  await chat.sql?.end({ timeout: 1 });
  await chat.stack?.stop();
  await chat.stub?.close();
  await chat.telegram?.close();
}

/** Before each test: the stubs forget what they were told and sent. */
export function resetStubs(chat: Pick<StubbedChatStack, 'stub' | 'telegram'>): void {
  chat.stub.reset();
  chat.telegram.reset();
}

/**
 * Connects the bot to the stack's Telegram stub as the org's admin
 * (POST /chat/bots/:id/telegram) and returns the webhook's secret token, the
 * one Telegram's updates must carry.
 */
export async function connectTelegram(chat: Pick<StubbedChatStack, 'stack' | 'sql' | 'telegram'>, botId: string, adminToken: string): Promise<string> {
  const connected = await fetch(`${chat.stack.functionsUrl}/chat/bots/${botId}/telegram`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bot_token: chat.telegram.token }),
  });
  if (connected.status !== 200) throw new Error(`connecting Telegram answered ${connected.status}: ${await connected.text()}`);
  const [{ secret_token: secret }] = await chat.sql<{ secret_token: string }[]>`
    select secret_token from private.bot_telegram where bot_id = ${botId}`;
  return secret;
}
