-- Applies the settings stored with `alter database ... set` and
-- `alter role ... set` (pg_db_role_setting) to the current session.
--
-- A PostgreSQL server does this when a session starts. PGlite 0.5.14 does not:
-- after re-opening a database, search_path is still its command-line `public`
-- and pgrst.db_schemas is unset, although both are stored. The local stack runs
-- this file right after every open (and after sql/platform has been loaded the
-- first time), outside any explicit transaction, so the values become the
-- session's baseline.
--
-- Precedence is the server's: `alter role all`, then database-wide, then
-- role-wide, then database-and-role (the later wins). Values are applied at
-- session level (set_config(..., false)), the level of a session default. A
-- setting that cannot be changed in a running session is skipped with a
-- WARNING.
do $$
declare
  setting record;
begin
  for setting in
    select
      pg_catalog.split_part(config.item, '=', 1) as name,
      pg_catalog.substr(config.item, pg_catalog.strpos(config.item, '=') + 1) as value
    from pg_catalog.pg_db_role_setting as s
    cross join lateral pg_catalog.unnest(s.setconfig) with ordinality as config(item, position)
    where (s.setdatabase = 0
           or s.setdatabase = (select d.oid from pg_catalog.pg_database as d
                               where d.datname = pg_catalog.current_database()))
      and (s.setrole = 0
           or s.setrole = (select r.oid from pg_catalog.pg_roles as r
                           where r.rolname = session_user))
    order by
      case
        when s.setdatabase = 0 and s.setrole = 0 then 0   -- alter role all
        when s.setrole = 0 then 1          -- database-wide
        when s.setdatabase = 0 then 2      -- role-wide
        else 3                             -- this database and this role
      end,
      config.position
  loop
    begin
      perform pg_catalog.set_config(setting.name, setting.value, false);
    exception
      when others then
        raise warning 'not applied: %=% (%)', setting.name, setting.value, sqlerrm;
    end;
  end loop;
end;
$$;
