-- An end user's conversations, closed ones too (private.end_user_conversations,
-- on every turn naming an end user): the live-only unique index does not
-- find the closed ones. conversations is big, hence a concurrent build in a
-- file of its own.
create index concurrently if not exists conversations_end_user_idx
  on public.conversations (bot_id, channel, external_user_id)
  where external_user_id is not null;
