-- An end user's chat spend over the last 24 hours (chat_prepare, through
-- private.end_user_chat_spend): the range of each of their conversations'
-- chat usage, read from the index alone. usage_events is big, hence a
-- concurrent build in a file of its own.
create index concurrently if not exists usage_events_chat_conversation_idx
  on public.usage_events (conversation_id, created_at) include (tokens_in, tokens_out)
  where kind = 'chat';
