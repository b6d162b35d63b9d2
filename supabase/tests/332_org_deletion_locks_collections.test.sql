-- An org's deletion locks its collections before its documents, as the last ingestion step takes them
-- (20261123015800; 20261123015700 for the step). PGlite runs one session, so the order is read from the
-- function, and the deletion is run once to show it still deletes.
begin;
create extension if not exists pgtap with schema extensions;

select plan(3);

select ok(
  (select position('from public.collections c where c.org_id = target.id order by c.id for update' in p.prosrc) between 1
     and position('from public.documents d where d.org_id = target.id order by d.id for update' in p.prosrc) - 1
   from pg_proc p where p.oid = 'private.delete_organization(uuid, text)'::regprocedure),
  'delete_organization locks the org''s collections (for update) before its documents'
);

insert into tests.fixtures (name, id) values ('owner_332', tests.create_user('owner@org-deletion-locks-332.test'));
select tests.remember('org_332', tests.create_org('org-deletion-locks-332', tests.fx('owner_332')));
insert into public.collections (org_id, name) values (tests.fx('org_332'), 'Handbook 332');

select tests.authenticate_as(tests.fx('owner_332'));
select lives_ok(
  format('select private.delete_organization(%L, %L)', tests.fx('org_332'),
    (select name from public.organizations where id = tests.fx('org_332'))),
  'an org with a collection is deleted'
);
select tests.clear_authentication();
select is((select count(*) from public.collections where org_id = tests.fx('org_332')), 0::bigint,
  'and its collections with it');

select * from finish();
rollback;
