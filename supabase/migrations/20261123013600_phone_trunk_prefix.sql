-- A national trunk 0 after the country code, however it is written.
--
-- private.normalize_phone_number dropped the "(0)" trunk prefix only when
-- spaces alone stood between it and the country code: "+49-(0)30-1234567",
-- "+49 (030) 1234567", "+44 020 7946 0018" and "+41 044 123 45 67" kept their
-- 0 and came out as numbers that do not exist (+490301234567, ...) yet pass
-- the E.164 check, so calls, campaigns and bookings stored and dialled them,
-- and a campaign queued one callee twice when given both spellings.
--
-- Now, after the separators are gone, a 0 right after the country code and
-- before a non-zero digit is dropped for the country codes where such a 0 can
-- only be the trunk prefix. The rule comes from Google libphonenumber's
-- metadata (PhoneNumberMetadata.xml, as shipped by the npm package
-- libphonenumber-js 1.13.16): the calling codes all of whose regions have
-- nationalPrefix "0" and whose national numbers (generalDesc
-- nationalNumberPattern) never begin with 0[1-9]. That covers "(0)", "(030)",
-- "-(0)-", ".(0).", a bare "020" and "+44020..." alike. Left out, because a
-- leading 0 there is part of the number or the trunk prefix is not a lone 0:
-- Italy and Vatican City +39, San Marino +378 (+379 is not in use), Norway
-- +47, Côte d'Ivoire +225, Burkina Faso +226, Niger +227, Benin +229, Gabon
-- +241, Congo +242, Rwanda +250 (06...), Tajikistan +992, and Botswana,
-- Eswatini, Belize, Panama, Tonga, Fiji, New Caledonia, Macau and Qatar
-- (0800..., 050..., 0080... numbers), the
-- codes with no trunk prefix (Spain +34, Portugal +351, Greece +30, Poland
-- +48, Denmark +45, Czechia +420, ...), NANP +1 (trunk 1), +7 and the others
-- with trunk 8, and Hungary +36 (06). Japan, Korea, India, Indonesia,
-- Thailand, Bulgaria and Uruguay keep their 00... numbers: only a 0 before a
-- non-zero digit goes.
--
-- An explicit "(0)" is still dropped after any country code but +39 and
-- +378, now also when hyphens or dots stand around it.
--
-- Numbers already stored (calls, bookings' attendee phones) are not
-- rewritten: a call queued before to +4402079460018 keeps that number, and
-- only numbers normalised from now on lose the trunk 0.

-- Latest definition: 20261123010800_phone_and_language_formats.sql; only the
-- hyphens and dots around "(0)" and the bare trunk 0 are new.
create or replace function private.normalize_phone_number(raw text)
returns text
language sql
immutable
security invoker
set search_path = ''
as $$
  select case when trunkless ~ '^\+[1-9][0-9]{6,14}$' then trunkless end
  from (
    select pg_catalog.regexp_replace(
      cleaned,
      '^\+(20|211|212|213|218|231|232|233|234|243|249|251|252|254|255|256|260|261|262|263|264|265|27|291|31|32|'
        || '33|353|355|358|359|370|373|374|377|380|381|382|383|385|386|387|389|40|41|421|423|43|44|46|49|508|51|'
        || '53|54|55|57|58|590|591|593|594|595|596|598|60|61|62|63|64|66|686|81|82|84|850|855|856|86|880|886|90|'
        || '91|92|93|94|95|961|962|963|964|966|967|970|971|972|976|977|98|994|995|996)0([1-9])',
      '+\1\2'
    ) as trunkless
    from (
      select pg_catalog.regexp_replace(
        pg_catalog.regexp_replace(spaced, '^\+(?!39|378)([1-9][0-9]{0,2})[[:space:].-]*\(0\)', '+\1'),
        '[[:space:]().-]', '', 'g'
      ) as cleaned
      from (
        select pg_catalog.btrim(pg_catalog.translate(raw, U&'\00A0\202F\2011\2013', '  --')) as spaced
      ) s
    ) n
  ) t;
$$;
comment on function private.normalize_phone_number(text) is 'A phone number as people type it ("+1 (415) 555-0123", "+49 (0)30 1234-567", "+44 020 7946 0018", no-break spaces and non-breaking hyphens too) in E.164, or null when it is not one. A trunk 0 after the country code is dropped: "(0)" after any code but Italy''s and San Marino''s, and a bare or parenthesised 0 before a non-zero digit for the codes whose national numbers never start with one (libphonenumber''s metadata).';
