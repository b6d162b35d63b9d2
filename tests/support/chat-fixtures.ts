/**
 * Orgs with bots, documents and products for the chat tests and bench,
 * written as postgres (what the dashboards and ingestion would have made).
 * Chunks carry the offline provider's lexical embeddings, so retrieval finds
 * them with no network, exactly as ingested documents would be found.
 */
import { randomUUID } from 'node:crypto';
import type { JwtClaims } from '../../functions/_shared/auth.ts';
import { type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { lexicalEmbedding } from '../../functions/_shared/embeddings/offline.ts';
import { toPgVector } from '../../functions/_shared/embeddings/index.ts';
import { signUserToken } from '../../scripts/local/keys.ts';

export type Role = 'owner' | 'admin' | 'member' | 'viewer';
const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];

export interface ChatOrg {
  id: string;
  users: Record<Role, string>;
  tokens: Record<Role, string>;
  claims: Record<Role, JwtClaims>;
}

export async function createChatOrg(sql: Sql, label: string): Promise<ChatOrg> {
  const id = randomUUID();
  const users = Object.fromEntries(ROLES.map((role) => [role, randomUUID()])) as Record<Role, string>;
  await sql.begin(async (tx) => {
    for (const role of ROLES) {
      await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
               values (${users[role]}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                       ${`${role}-${users[role].slice(0, 8)}@${label}.test`}, '{}', '{}')`;
    }
    await tx`insert into public.organizations (id, name, slug) values (${id}, ${label}, ${`${label}-${id.slice(0, 8)}`})`;
    for (const role of ROLES) {
      await tx`insert into public.memberships (org_id, user_id, role) values (${id}, ${users[role]}, ${role}::public.org_role)`;
    }
  });
  const tokens = {} as Record<Role, string>;
  const claims = {} as Record<Role, JwtClaims>;
  for (const role of ROLES) {
    tokens[role] = await signUserToken({ id: users[role], email: `${role}@${label}.test` }, { expiresInSeconds: 3600 });
    claims[role] = { role: 'authenticated', aud: 'authenticated', sub: users[role], exp: Math.floor(Date.now() / 1000) + 3600 };
  }
  return { id, users, tokens, claims };
}

export interface BotOptions {
  slug: string;
  model?: string;
  channels?: string[];
  enabled?: boolean;
  escalationAction?: 'notify' | 'transfer' | 'log';
  managerContact?: string | null;
  language?: string;
}

export async function createBot(sql: Sql, orgId: string, options: BotOptions): Promise<string> {
  const [bot] = await sql<{ id: string }[]>`
    insert into public.bots (org_id, name, slug, system_prompt, language, model, channels, enabled, escalation_action, manager_contact)
    values (${orgId}, ${`Bot ${options.slug}`}, ${options.slug}, 'You answer questions about our shop.',
            ${options.language ?? 'en'}, ${options.model ?? 'offline'}, ${options.channels ?? ['web', 'api', 'telegram', 'voice']},
            ${options.enabled ?? true}, ${options.escalationAction ?? 'notify'}::public.bot_escalation_action,
            ${options.managerContact ?? null})
    returning id`;
  return bot.id;
}

/** A ready document with one chunk per page of text; returns its id. */
export async function createDocument(sql: Sql, orgId: string, name: string, pages: string[]): Promise<string> {
  const id = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, chunk_count, page_count)
             values (${id}, ${orgId}, ${name}, 'application/pdf', 1000, ${`${orgId}/${id}/${name}`}, 'ready', 100,
                     ${pages.length}, ${pages.length})`;
    for (const [index, text] of pages.entries()) {
      await tx`insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
               values (${orgId}, ${id}, ${index}, ${index + 1}, ${index + 1}, ${text}, ${text.split(' ').length},
                       ${toPgVector(lexicalEmbedding(text))}::extensions.vector)`;
    }
  });
  return id;
}

export async function createProduct(
  sql: Sql,
  orgId: string,
  product: { name: string; description: string; price: number; sku?: string; stock?: number },
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into public.products (org_id, name, description, price, sku, stock)
    values (${orgId}, ${product.name}, ${product.description}, ${product.price}, ${product.sku ?? null}, ${product.stock ?? null})
    returning id`;
  return row.id;
}

/** An API key of the org, made by its owner through the public RPC; returns its id and secret. */
export async function createApiKey(sql: Sql, org: ChatOrg, scopes: string[] = ['chat.write']): Promise<{ id: string; key: string }> {
  return withUserScope(sql, org.claims.owner, async (tx) => {
    const [created] = await tx<{ id: string; key: string }[]>`
      select id, key from public.create_api_key(${org.id}, 'chat test', ${scopes})`;
    return created;
  });
}
