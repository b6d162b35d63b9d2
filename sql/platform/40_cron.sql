-- Local stand-in for pg_cron 1.6 (the version on Supabase): the cron.job and
-- cron.job_run_details tables and the SQL API (cron.schedule,
-- cron.schedule_in_database, cron.unschedule, cron.alter_job) with pg_cron's
-- signatures, schedule syntax, upsert-by-name, error messages and RLS.
--
-- Nothing here runs a job. The local stack's scheduler
-- (scripts/local/scheduler.ts) reads active rows of cron.job, runs each due
-- command in its own transaction as the job's username, and records every run
-- in cron.job_run_details (status 'starting' -> 'running' -> 'succeeded' or
-- 'failed', return_message, start_time, end_time), as pg_cron's background
-- worker does. A schedule is either five cron fields
-- (minute hour day-of-month month day-of-week; '*', lists, ranges, '/step',
-- month and weekday names, '$' for the last day of the month), an '@' macro
-- (@yearly @annually @monthly @weekly @daily @midnight @hourly @reboot), or
-- '[1-59] seconds'. Times are UTC (pg_cron's cron.timezone default).
--
-- On Supabase the cron schema exists only once pg_cron is enabled; here it is
-- always present.

create schema cron authorization supabase_admin;

create sequence cron.jobid_seq;
create sequence cron.runid_seq;

create table cron.job (
  jobid bigint default nextval('cron.jobid_seq'::regclass) not null,
  schedule text not null,
  command text not null,
  nodename text default 'localhost'::text not null,
  nodeport integer default 5432 not null,  -- pg_cron: inet_server_port(), which is null in PGlite
  database text default current_database() not null,
  username text default current_user not null,
  active boolean default true not null,
  jobname text,
  constraint job_pkey primary key (jobid),
  constraint jobname_username_uniq unique (jobname, username)
);
alter sequence cron.jobid_seq owned by cron.job.jobid;

create table cron.job_run_details (
  jobid bigint,
  runid bigint default nextval('cron.runid_seq'::regclass) not null,
  job_pid integer,
  database text,
  username text,
  command text,
  status text,
  return_message text,
  start_time timestamp with time zone,
  end_time timestamp with time zone,
  constraint job_run_details_pkey primary key (runid)
);
alter sequence cron.runid_seq owned by cron.job_run_details.runid;

-- pg_cron: everyone may read, RLS shows each role its own jobs and runs.
alter table cron.job enable row level security;
alter table cron.job_run_details enable row level security;
create policy cron_job_policy on cron.job using (username = current_user);
create policy cron_job_run_details_policy on cron.job_run_details using (username = current_user);
grant select on cron.job to public;
grant select on cron.job_run_details to public;

alter table cron.job owner to supabase_admin;
alter table cron.job_run_details owner to supabase_admin;

-- Supabase (extensions.grant_pg_cron_access): postgres uses the schema,
-- reads cron.job (writes go through the functions) and owns the run history.
grant usage on schema cron to postgres with grant option;
grant all privileges on all tables in schema cron to postgres with grant option;
revoke all on table cron.job from postgres;
grant select on table cron.job to postgres with grant option;
grant all on all sequences in schema cron to postgres with grant option;

-- ---------------------------------------------------------------------------
-- Schedule syntax (local helper; pg_cron does this in C).
-- ---------------------------------------------------------------------------

-- One cron field: a list of ranges; a range is '*', N or N-M, optionally
-- followed by '/step' ('*/step' and 'N-M/step'; 'N/step' is refused as in
-- pg_cron). Names are month or weekday names when given.
create function cron._local_field_is_valid(field text, low integer, high integer, names text[])
returns boolean
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  part text;
  matched text[];
  first_value integer;
  last_value integer;
begin
  if field is null or field = '' then
    return false;
  end if;
  foreach part in array pg_catalog.string_to_array(field, ',') loop
    matched := pg_catalog.regexp_match(part, '^(\*|[0-9a-z]+(-[0-9a-z]+)?)(/([0-9]+))?$', 'i');
    if matched is null then
      return false;
    end if;
    if matched[3] is not null and matched[1] <> '*' and matched[2] is null then
      return false;  -- step without a range, e.g. 1/20
    end if;
    if matched[4] is not null and matched[4]::numeric <= 0 then
      return false;
    end if;
    if matched[1] <> '*' then
      first_value := cron._local_field_value(pg_catalog.split_part(matched[1], '-', 1), names, low);
      last_value := case
        when matched[2] is null then first_value
        else cron._local_field_value(pg_catalog.split_part(matched[1], '-', 2), names, low)
      end;
      if first_value is null or last_value is null
         or first_value < low or first_value > high
         or last_value < low or last_value > high then
        return false;
      end if;
    end if;
  end loop;
  return true;
end;
$$;

-- A number, or the position of a name in names (offset by low), or null.
create function cron._local_field_value(token text, names text[], low integer)
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$
  select case
    when token ~ '^[0-9]{1,9}$' then token::integer
    when names is not null and pg_catalog.array_position(names, pg_catalog.lower(token)) is not null
      then pg_catalog.array_position(names, pg_catalog.lower(token)) - 1 + low
    else null
  end
$$;

create function cron._local_schedule_is_valid(schedule text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  fields text[];
  trimmed text := pg_catalog.btrim(schedule, E' \t\n\r');
begin
  if trimmed is null or trimmed = '' then
    return false;
  end if;

  -- '@' macros
  if pg_catalog.left(trimmed, 1) = '@' then
    return trimmed in ('@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight',
                       '@hourly', '@reboot', '@restart');
  end if;

  -- '[1-59] seconds' (also '1 second'; case-insensitive, as pg_cron's sscanf)
  if trimmed ~* '^[0-9]+\s*seconds?$' then
    return (pg_catalog.substring(trimmed, '^[0-9]+'))::numeric between 1 and 59;
  end if;

  fields := pg_catalog.regexp_split_to_array(trimmed, '\s+');
  if pg_catalog.array_length(fields, 1) <> 5 then
    return false;
  end if;

  return cron._local_field_is_valid(fields[1], 0, 59, null)
    and cron._local_field_is_valid(fields[2], 0, 23, null)
    and (fields[3] = '$' or cron._local_field_is_valid(fields[3], 1, 31, null))
    and cron._local_field_is_valid(fields[4], 1, 12,
          array['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'])
    and cron._local_field_is_valid(fields[5], 0, 7,
          array['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']);
end;
$$;

-- ---------------------------------------------------------------------------
-- The pg_cron API. Runs as the caller: jobs belong to current_user, as in
-- pg_cron (which records GetUserId()).
-- ---------------------------------------------------------------------------

-- cron.schedule_in_database(job_name, schedule, command, database, username, active)
create function cron.schedule_in_database(
  job_name text,
  schedule text,
  command text,
  database text,
  username text default null,
  active boolean default true
)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
declare
  job_id bigint;
  job_user text := coalesce(username, current_user);
begin
  if schedule is null then
    raise exception 'schedule can not be NULL' using errcode = 'XX000';
  end if;
  if command is null then
    raise exception 'command can not be NULL' using errcode = 'XX000';
  end if;
  if not cron._local_schedule_is_valid(schedule) then
    raise exception 'invalid schedule: %', schedule
      using errcode = '22023',
            hint = 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''';
  end if;
  if username is not null and username <> current_user then
    if not (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = current_user) then
      raise exception 'must be superuser to create a job for another role' using errcode = 'XX000';
    end if;
    if not exists (select 1 from pg_catalog.pg_roles as r where r.rolname = username) then
      raise exception 'role "%" does not exist', username using errcode = 'XX000';
    end if;
  end if;
  if not exists (select 1 from pg_catalog.pg_database as d
                 where d.datname = coalesce(database, pg_catalog.current_database())) then
    raise exception 'database "%" does not exist', database using errcode = '3D000';
  end if;

  if job_name is null then
    insert into cron.job (schedule, command, nodename, nodeport, database, username, active)
    values (schedule, command, 'localhost', 5432,
            coalesce(database, pg_catalog.current_database()), job_user, coalesce(active, true))
    returning jobid into job_id;
  else
    insert into cron.job as j (schedule, command, nodename, nodeport, database, username, active, jobname)
    values (schedule, command, 'localhost', 5432,
            coalesce(database, pg_catalog.current_database()), job_user, coalesce(active, true), job_name)
    on conflict on constraint jobname_username_uniq do update
      set schedule = excluded.schedule,
          command = excluded.command,
          database = excluded.database
    returning j.jobid into job_id;
  end if;

  return job_id;
end;
$$;

-- cron.schedule(schedule, command): a new, unnamed job.
create function cron.schedule(schedule text, command text)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return cron.schedule_in_database(null, schedule, command, null, null, true);
end;
$$;

-- cron.schedule(job_name, schedule, command): creates the job, or updates the
-- schedule and command of the caller's job of that name and returns its id.
create function cron.schedule(job_name text, schedule text, command text)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if job_name is null then
    raise exception 'job_name can not be NULL' using errcode = 'XX000';
  end if;
  return cron.schedule_in_database(job_name, schedule, command, null, null, true);
end;
$$;

-- cron.unschedule(job_id)
create function cron.unschedule(job_id bigint)
returns boolean
language plpgsql
security invoker
set search_path = ''
as $$
declare
  owner_name text;
begin
  select j.username into owner_name from cron.job as j where j.jobid = job_id;
  if not found then
    raise exception 'could not find valid entry for job %', job_id using errcode = 'XX000';
  end if;
  if pg_catalog.lower(owner_name) <> pg_catalog.lower(current_user)
     and not pg_catalog.has_table_privilege('cron.job', 'delete') then
    raise exception 'permission denied for table job' using errcode = '42501';
  end if;
  delete from cron.job as j where j.jobid = job_id;
  return true;
end;
$$;

-- cron.unschedule(job_name): the caller's job of that name.
create function cron.unschedule(job_name text)
returns boolean
language plpgsql
security invoker
set search_path = ''
as $$
declare
  found_id bigint;
begin
  if job_name is null then
    raise exception 'job_name can not be NULL' using errcode = 'XX000';
  end if;
  select j.jobid into found_id from cron.job as j
  where j.jobname = job_name and j.username = current_user
  limit 1;
  if not found then
    raise exception 'could not find valid entry for job ''%''', job_name using errcode = 'XX000';
  end if;
  delete from cron.job as j where j.jobid = found_id;
  return true;
end;
$$;

-- cron.alter_job: change any of schedule, command, database, username, active.
create function cron.alter_job(
  job_id bigint,
  schedule text default null,
  command text default null,
  database text default null,
  username text default null,
  active boolean default null
)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
declare
  is_superuser boolean := (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = current_user);
begin
  if job_id is null then
    raise exception 'job_id can not be NULL' using errcode = 'XX000';
  end if;
  if username is not null and not is_superuser then
    raise exception 'must be superuser to alter username' using errcode = 'XX000';
  end if;
  if schedule is not null and not cron._local_schedule_is_valid(schedule) then
    raise exception 'invalid schedule: %', schedule
      using errcode = '22023',
            hint = 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''';
  end if;
  if schedule is null and command is null and database is null and username is null and active is null then
    raise exception 'no updates specified'
      using errcode = 'XX000',
            hint = 'You must specify at least one job attribute to change when calling alter_job';
  end if;

  update cron.job as j
  set schedule = coalesce(alter_job.schedule, j.schedule),
      command = coalesce(alter_job.command, j.command),
      database = coalesce(alter_job.database, j.database),
      username = coalesce(alter_job.username, j.username),
      active = coalesce(alter_job.active, j.active)
  where j.jobid = job_id
    and (is_superuser or j.username = current_user);

  if not found then
    raise exception 'Job % does not exist or you don''t own it', job_id using errcode = 'XX000';
  end if;
end;
$$;

alter function cron._local_field_value(text, text[], integer) owner to supabase_admin;
alter function cron._local_field_is_valid(text, integer, integer, text[]) owner to supabase_admin;
alter function cron._local_schedule_is_valid(text) owner to supabase_admin;
alter function cron.schedule_in_database(text, text, text, text, text, boolean) owner to supabase_admin;
alter function cron.schedule(text, text) owner to supabase_admin;
alter function cron.schedule(text, text, text) owner to supabase_admin;
alter function cron.unschedule(bigint) owner to supabase_admin;
alter function cron.unschedule(text) owner to supabase_admin;
alter function cron.alter_job(bigint, text, text, text, text, boolean) owner to supabase_admin;

grant all on all functions in schema cron to postgres with grant option;
