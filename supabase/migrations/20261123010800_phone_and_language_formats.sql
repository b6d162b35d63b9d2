-- Phone numbers and language tags as people outside the US write them.
--
-- 1. private.normalize_phone_number turned the European "+49 (0)30 12345678"
-- into +4903012345678, a number that does not exist: "(0)" is the trunk
-- prefix dialled only from inside the country, so it goes when it follows
-- the country code. Not for Italy (+39) and San Marino (+378), whose leading
-- 0 is part of the number and is dialled from abroad too: there the
-- parentheses go and the 0 stays, as before. A number pasted from a word
-- processor or a web page often holds a no-break space (U+00A0), a narrow
-- no-break space (U+202F, French typography), a non-breaking hyphen (U+2011)
-- or an en dash (U+2013) where a space or hyphen was meant; they were
-- refused, and are now separators like their ASCII look-alikes.
--
-- 2. Language tags with a script or a numeric region ('es-419', 'zh-Hant',
-- 'sr-Latn') were refused by bots.language and org_settings.voice_language;
-- they take the pattern profiles.locale already uses. The new checks accept
-- every value the old ones did, so validating them cannot fail; they are
-- added not valid and then validated, so reading the table does not hold an
-- exclusive lock.

-- Latest definition: 20261123001200_calls.sql; only the translation of the
-- look-alike separators and the dropped trunk prefix are new.
create or replace function private.normalize_phone_number(raw text)
returns text
language sql
immutable
security invoker
set search_path = ''
as $$
  select case when cleaned ~ '^\+[1-9][0-9]{6,14}$' then cleaned end
  from (
    select pg_catalog.regexp_replace(
      pg_catalog.regexp_replace(spaced, '^\+(?!39|378)([1-9][0-9]{0,2})[[:space:]]*\(0\)', '+\1'),
      '[[:space:]().-]', '', 'g'
    ) as cleaned
    from (
      select pg_catalog.btrim(pg_catalog.translate(raw, U&'\00A0\202F\2011\2013', '  --')) as spaced
    ) s
  ) n;
$$;
comment on function private.normalize_phone_number(text) is 'A phone number as people type it ("+1 (415) 555-0123", "+49 (0)30 1234-567", no-break spaces and non-breaking hyphens too) in E.164, or null when it is not one. A "(0)" trunk prefix after the country code is dropped, except for Italy and San Marino, whose 0 is dialled from abroad.';

alter table public.bots
  drop constraint bots_language_format,
  add constraint bots_language_format
    check (language = 'auto' or language ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$') not valid;
alter table public.bots validate constraint bots_language_format;

alter table public.org_settings
  drop constraint org_settings_voice_language_format,
  add constraint org_settings_voice_language_format
    check (voice_language ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$') not valid;
alter table public.org_settings validate constraint org_settings_voice_language_format;

-- Latest definition: 20261123004500_invitation_confirmed_email_and_settings_ranges.sql;
-- only the voice language's pattern (and its message's examples) is new.
create or replace function private.validate_org_settings()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  problem text := private.notification_preferences_problem(new.notification_preferences, 'org');
  model public.chat_models;
begin
  if problem is not null then
    raise exception '%', problem using errcode = 'invalid_parameter_value',
      hint = 'Keys are event types of public.event_types or "*"; values {"in_app": [roles], "webhook": true|false}.';
  end if;
  if new.voice is null or new.voice !~ '^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$' then
    raise exception 'a voice is 1 to 100 letters, digits, spaces, dots, colons, underscores or hyphens'
      using errcode = 'invalid_parameter_value';
  end if;
  if new.voice_language is null
    or new.voice_language !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' then
    raise exception 'the voice language is a language tag such as en, pt-BR, es-419 or zh-Hant, not %',
      coalesce(new.voice_language, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  -- Two decimals, as the columns' former numeric(3, 2) stored them; the
  -- ranges are checked on the rounded value (2.004 is 2.00, 2.005 is 2.01).
  new.speaking_rate := pg_catalog.round(new.speaking_rate, 2);
  new.interruption_sensitivity := pg_catalog.round(new.interruption_sensitivity, 2);
  new.temperature := pg_catalog.round(new.temperature, 2);
  if new.speaking_rate is null or new.speaking_rate not between 0.5 and 2.0 then
    raise exception 'the speaking rate is between 0.5 and 2.0' using errcode = 'invalid_parameter_value';
  end if;
  if new.interruption_sensitivity is null or new.interruption_sensitivity not between 0 and 1 then
    raise exception 'the interruption sensitivity is between 0 and 1' using errcode = 'invalid_parameter_value';
  end if;
  if new.temperature is null or new.temperature not between 0 and 2 then
    raise exception 'the temperature is between 0 and 2' using errcode = 'invalid_parameter_value';
  end if;
  select * into model from public.chat_models m where m.id = new.default_chat_model;
  if not found then
    raise exception 'unknown model: %', coalesce(new.default_chat_model, 'null')
      using errcode = 'invalid_parameter_value', hint = 'See public.chat_models.';
  end if;
  if not model.enabled and (tg_op = 'INSERT' or new.default_chat_model is distinct from old.default_chat_model) then
    raise exception 'the model % is disabled and cannot be chosen', model.id using errcode = 'invalid_parameter_value';
  end if;
  if new.max_tokens is null or new.max_tokens not between 1 and least(8192, model.max_output_tokens) then
    raise exception 'max_tokens is between 1 and % for %', least(8192, model.max_output_tokens), model.id
      using errcode = 'invalid_parameter_value';
  end if;
  return new;
end;
$$;
