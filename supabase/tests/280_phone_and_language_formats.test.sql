-- Phone numbers and language tags as written outside the US
-- (20261123010800_phone_and_language_formats.sql): a "(0)" trunk prefix after
-- the country code is dropped (not for Italy and San Marino), no-break
-- spaces, non-breaking hyphens and en dashes separate digits as spaces and
-- hyphens do, and every case accepted or refused before still is; language
-- tags with a script or a numeric region are accepted by bots.language and
-- org_settings.voice_language, malformed ones are still refused.
begin;
create extension if not exists pgtap with schema extensions;

select plan(22);

select tests.remember('owner', tests.create_user('formats280-owner@a.test'));
select tests.remember('org', tests.create_org('formats280-a', tests.fx('owner')));
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values
  (tests.fx('org'), 'Formats voice', 'formats280-voice', 'asst_formats280', '{api,voice,web}');
select tests.remember('bot', id) from public.bots where org_id = tests.fx('org') and slug = 'formats280-voice';
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id) values
  (tests.fx('org'), 'vapi', now(), 'pn_formats280');
-- No dispatcher secrets, so the inserts wake nothing.
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- Phone numbers
-- ---------------------------------------------------------------------------

select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+49 (0)30 12345678', '+44 (0)20 7946 0958', '+49(0)30 1234-567', '+41 (0) 44 668 18 00'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+493012345678'), ('+442079460958'), ('+49301234567'), ('+41446681800')$$,
  'a "(0)" trunk prefix after the country code is dropped, with or without a space before it'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+39 (0)6 1234 5678', '+378 (0)549 123456']) with ordinality r(raw, n) order by n$$,
  $$values ('+390612345678'), ('+3780549123456')$$,
  'Italy and San Marino keep their 0, which is dialled from abroad too'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array[U&'+49\00A030\00A012345678', U&'+33\202F1\202F23\202F45\202F67\202F89',
                      U&'+1\2011415\2011555\20110100', U&'+1 415 555\20130100', U&'\00A0+44\00A0(0)20\00A07946\00A00958\00A0'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+493012345678'), ('+33123456789'), ('+14155550100'), ('+14155550100'), ('+442079460958')$$,
  'no-break space, narrow no-break space, non-breaking hyphen and en dash separate digits'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+1 415 555 0101', '+14155550101', '+1.415.555.0102', '+1 (415) 555-0101', ' +4930123456 '])
      with ordinality r(raw, n) order by n$$,
  $$values ('+14155550101'), ('+14155550101'), ('+14155550102'), ('+14155550101'), ('+4930123456')$$,
  'the numbers accepted before are accepted as before'
);
select is(
  (select count(*)::integer from unnest(array['not a number', '12345', '4930123456', '+0 30 1234567', '+49 30',
      '+1234567890123456', '(0)30 12345678', U&'+49\2014030\201412345678', null]) raw
   where private.normalize_phone_number(raw) is not null),
  0,
  'the numbers refused before are refused as before (no plus, a leading 0, too short or long, an em dash)'
);

select tests.act_as('owner');
select results_eq(
  $$select to_number from public.create_outbound_call(tests.fx('org'), tests.fx('bot'), U&'+49\00A0(0)30\00A012345678')$$,
  $$values ('+493012345678'::text)$$,
  'a call to a number pasted in the European form is queued to the number that exists'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+49 (0)')$$,
  '22023', null,
  'a trunk prefix with no number after it is still refused'
);
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- Language tags
-- ---------------------------------------------------------------------------

create function pg_temp.bot_language_accepted(tag text) returns boolean language plpgsql as $$
begin
  insert into public.bots (org_id, name, slug, language) values (tests.fx('org'), 'Probe', 'formats280-probe', tag);
  delete from public.bots where org_id = tests.fx('org') and slug = 'formats280-probe';
  return true;
exception when check_violation then
  return false;
end;
$$;

-- True when the org's settings refuse the tag with 22023 (the validation
-- trigger, before the check constraint).
create function pg_temp.voice_language_refused(tag text) returns boolean language plpgsql as $$
begin
  update public.org_settings set voice_language = tag where org_id = tests.fx('org');
  return false;
exception when invalid_parameter_value then
  return true;
end;
$$;

select lives_ok(
  $$insert into public.bots (org_id, name, slug, language)
    select tests.fx('org'), 'Formats ' || tag, 'formats280-' || lower(tag), tag
    from unnest(array['es-419', 'zh-Hant', 'sr-Latn', 'pt-BR', 'zh-Hant-TW', 'yue', 'en', 'auto']) tag$$,
  'bots: tags with a script or a numeric region are accepted, as are the ones accepted before'
);
select results_eq(
  $$select language from public.bots where org_id = tests.fx('org') and slug like 'formats280-%' and slug <> 'formats280-voice'
    order by language$$,
  $$values ('auto'), ('en'), ('es-419'), ('pt-BR'), ('sr-Latn'), ('yue'), ('zh-Hant'), ('zh-Hant-TW')$$,
  'bots: the tags are stored as written'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, language) values (tests.fx('org'), 'X', 'formats280-x', 'english')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_language_format"',
  'bots: a language name is not a tag'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, language) values (tests.fx('org'), 'X', 'formats280-x', 'EN')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_language_format"',
  'bots: an upper-case language is not a tag'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, language) values (tests.fx('org'), 'X', 'formats280-x', 'de-de')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_language_format"',
  'bots: nor is a lower-case region'
);
select is(
  (select count(*)::integer from unnest(array['zh-hant', 'es-41', 'sr-Latn-', 'de_DE', 'Auto', '']) tag
   where pg_temp.bot_language_accepted(tag)),
  0,
  'bots: other malformed tags are refused too'
);

select lives_ok(
  $$update public.org_settings set voice_language = 'es-419' where org_id = tests.fx('org')$$,
  'org settings: es-419 is a voice language'
);
select lives_ok(
  $$update public.org_settings set voice_language = 'zh-Hant' where org_id = tests.fx('org')$$,
  'org settings: zh-Hant is a voice language'
);
select lives_ok(
  $$update public.org_settings set voice_language = 'sr-Latn' where org_id = tests.fx('org')$$,
  'org settings: sr-Latn is a voice language'
);
select lives_ok(
  $$update public.org_settings set voice_language = 'pt-BR' where org_id = tests.fx('org')$$,
  'org settings: pt-BR still is'
);
select is(
  (select count(*)::integer from unnest(array['english', 'EN', 'de-de', 'auto', 'zh-hant']) tag
   where not pg_temp.voice_language_refused(tag)),
  0,
  'org settings: english, EN, de-de (and auto, which is for bots) are refused with 22023'
);
select is(
  (select voice_language from public.org_settings where org_id = tests.fx('org')),
  'pt-BR',
  'org settings: a refused tag changes nothing'
);
-- The check itself, without the trigger in front of it.
set local session_replication_role = replica;
select lives_ok(
  $$update public.org_settings set voice_language = 'zh-Hant-TW' where org_id = tests.fx('org')$$,
  'org settings: the check accepts a tag with a script and a region'
);
select throws_ok(
  $$update public.org_settings set voice_language = 'de-de' where org_id = tests.fx('org')$$,
  '23514', 'new row for relation "org_settings" violates check constraint "org_settings_voice_language_format"',
  'org settings: and refuses a malformed one'
);
set local session_replication_role = origin;

select results_eq(
  $$select c.convalidated from pg_constraint c
    where (c.conrelid, c.conname) in (('public.bots'::regclass, 'bots_language_format'),
                                      ('public.org_settings'::regclass, 'org_settings_voice_language_format'))$$,
  $$values (true), (true)$$,
  'both checks are validated'
);

select * from finish();
rollback;
