import { describe, expect, it } from 'vitest';
import { settingChangesIn } from '../../scripts/local/session-settings.ts';

const names = (sql: string) => [...settingChangesIn(sql).names].sort();

describe('spotting session-level setting changes', () => {
  it('sees set, set session, role, session authorization and time zone', () => {
    expect(names('set search_path = public')).toEqual(['search_path']);
    expect(names('SET SESSION statement_timeout TO 5000')).toEqual(['statement_timeout']);
    expect(names('set role authenticated; set session authorization anon')).toEqual(['role', 'session_authorization']);
    expect(names("set time zone 'Europe/Berlin'")).toEqual(['timezone']);
    expect(names('set "app.Tenant" = 1')).toEqual(['app.Tenant']);
  });
  it('ignores what ends with the transaction, and UPDATE ... SET', () => {
    expect(names('set local role authenticated')).toEqual([]);
    expect(names("select set_config('request.jwt.claims', $1, true)")).toEqual([]);
    expect(names('update notes set body = 1 where id = 2')).toEqual([]);
    expect(names("select 'set role x' as text -- set role y\n")).toEqual([]);
    expect(names('set transaction isolation level serializable')).toEqual([]);
  });
  it('sees set_config with is_local false, and flags names only known at run time', () => {
    expect(names("select set_config('app.tenant', 'acme', false)")).toEqual(['app.tenant']);
    expect(names("select set_config('app.x', json_build_object('a', 1)::text, false)")).toEqual(['app.x']);
    expect(settingChangesIn('select set_config($1, $2, false)').unknownNames).toBe(true);
  });
  it('sees resets', () => {
    expect(names('reset role')).toEqual(['role']);
    expect(settingChangesIn('reset all').resetAll).toBe(true);
    expect(settingChangesIn('discard all').resetAll).toBe(true);
  });
});
