-- A national trunk 0 after the country code, however it is written
-- (20261123013600_phone_trunk_prefix.sql): "(0)" between hyphens or dots,
-- "(030)", a bare "020" and "+44020..." lose the 0 for the codes whose
-- national numbers never start with 0[1-9]; Italy, San Marino, the codes with
-- no trunk prefix (Spain, Côte d'Ivoire) and NANP keep what they had; calls
-- and campaigns given two spellings of one callee queue one number.
begin;
create extension if not exists pgtap with schema extensions;

select plan(13);

select tests.remember('owner', tests.create_user('trunk309-owner@a.test'));
select tests.remember('org', tests.create_org('trunk309-a', tests.fx('owner')));
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values
  (tests.fx('org'), 'Trunk voice', 'trunk309-voice', 'asst_trunk309', '{api,voice,web}');
select tests.remember('bot', id) from public.bots where org_id = tests.fx('org') and slug = 'trunk309-voice';
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id) values
  (tests.fx('org'), 'vapi', now(), 'pn_trunk309');
-- No dispatcher secrets, so the inserts wake nothing.
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- normalize_phone_number
-- ---------------------------------------------------------------------------

select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+49 (0)30 1234567', '+49-(0)30-1234567', '+49.(0).30.1234567', '+49 (030) 1234567',
                      '+49 030 1234567', '+490301234567', '+49(0)-30-1234567'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+49301234567'), ('+49301234567'), ('+49301234567'), ('+49301234567'),
           ('+49301234567'), ('+49301234567'), ('+49301234567')$$,
  'Germany: the trunk 0 goes in every spelling, "(0)", "-(0)-", ".(0).", "(030)", bare and run together'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+44 020 7946 0018', '+44 (020) 7946 0018', '+4402079460018', '+44 20 7946 0018',
                      '+41 044 123 45 67', '+41-(0)44-123 45 67', '+33 01 23 45 67 89', '+31 020 123 4567'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+442079460018'), ('+442079460018'), ('+442079460018'), ('+442079460018'),
           ('+41441234567'), ('+41441234567'), ('+33123456789'), ('+31201234567')$$,
  'the United Kingdom, Switzerland, France and the Netherlands: a bare leading 0 is the trunk prefix'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+81 090-1234-5678', '+81 0037-12-3456', '+91 080 1234 5678'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+819012345678'), ('+810037123456'), ('+918012345678')$$,
  'Japan and India: a 0 before a non-zero digit goes, their 00 numbers keep both zeros'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+39 06 1234 5678', '+39 (06) 1234 5678', '+39-(0)6-1234-5678', '+390612345678',
                      '+378 0549 123456', '+378 (0549) 123456', '+378.(0).549.123456'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+390612345678'), ('+390612345678'), ('+390612345678'), ('+390612345678'),
           ('+3780549123456'), ('+3780549123456'), ('+3780549123456')$$,
  'Italy and San Marino keep their 0, which is dialled from abroad too, in every spelling'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+225 07 07 12 34 56', '+34 912 345 678', '+36 06 1 234 5678', '+47 02 345'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+2250707123456'), ('+34912345678'), ('+360612345678'), ('+4702345')$$,
  'where a 0 may be part of the number, or the trunk prefix is not a lone 0 (Hungary), a bare 0 stays'
);
select results_eq(
  $$select private.normalize_phone_number(raw)
    from unnest(array['+1 415 555 0101', '+1 (416) 555-0199', '+14155550102', '+1-800-555-0100'])
      with ordinality r(raw, n) order by n$$,
  $$values ('+14155550101'), ('+14165550199'), ('+14155550102'), ('+18005550100')$$,
  'the United States and Canada are unchanged'
);
select is(
  (select count(*)::integer from unnest(array['+44 0', '+44 (0)', '+49-(0)-', '0049 030 1234567', '+44 020']) raw
   where private.normalize_phone_number(raw) is not null),
  0,
  'a trunk prefix with too little after it, or no plus, is still refused'
);

-- ---------------------------------------------------------------------------
-- Calls and campaigns
-- ---------------------------------------------------------------------------

select tests.act_as('owner');
select results_eq(
  $$select to_number from public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+41 044 123 45 67')$$,
  $$values ('+41441234567'::text)$$,
  'create_outbound_call: a bare trunk 0 is not dialled'
);
select results_eq(
  $$select to_number from public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+41-(0)44-123 45 67')$$,
  $$values ('+41441234567'::text)$$,
  'create_outbound_call: nor is one between hyphens'
);
select results_eq(
  $$select to_number, count(*)::integer from public.calls
    where org_id = tests.fx('org') and campaign_id is null group by to_number$$,
  $$values ('+41441234567'::text, 2)$$,
  'create_outbound_call: both spellings are stored as the one number'
);

select tests.remember('campaign', (
  select campaign_id from public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Trunk 309',
    array['+49 (0)30 1234567', '+49-(0)30-1234567', '+49 (030) 1234567', '+49 030 1234567',
          '+44 020 7946 0018', '+44 20 7946 0018', '+39 06 1234 5678', '+39 6 1234 5678'])
));
select results_eq(
  $$select calls_created, duplicates_removed, invalid_numbers from public.call_campaigns where id = tests.fx('campaign')$$,
  $$values (4, 4, '{}'::text[])$$,
  'create_call_campaign: the spellings of one callee are one call, the duplicates counted'
);
select results_eq(
  $$select to_number from public.calls where campaign_id = tests.fx('campaign') order by to_number$$,
  $$values ('+390612345678'::text), ('+39612345678'), ('+442079460018'), ('+49301234567')$$,
  'create_call_campaign: each callee is queued once, at the number that exists; Italian 06 and 6 stay apart'
);
select tests.act_as('postgres');

select is(
  (select count(*)::integer from public.calls where org_id = tests.fx('org') and to_number ~ '^\+(41|44|49)0'),
  0,
  'no call was stored with the trunk 0'
);
select * from finish();
rollback;
