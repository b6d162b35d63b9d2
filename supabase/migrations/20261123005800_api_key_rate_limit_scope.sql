-- Every route that takes an API key now takes from the key's one bucket
-- ('api_key:<id>' in private.take_rate_limit, the one private.chat_prepare
-- uses): the chat endpoints, the knowledge search, upload and catalog search,
-- and the calendar's bot routes. The column's comment said chat only.
comment on column public.api_keys.rate_limit_per_minute is
  'Requests a minute the key may make, over every endpoint that takes API keys together (chat, knowledge, catalog and calendar routes; one sliding window).';
