import { describe, expect, it } from 'vitest';
import { CronSyntaxError, matchesMinute, parseCronSchedule } from '../../scripts/local/cron-expression.ts';

const fields = (text: string) => {
  const schedule = parseCronSchedule(text);
  if (schedule.kind !== 'fields') throw new Error('expected fields');
  return schedule;
};

describe('cron expressions', () => {
  it('matches steps, ranges, lists and names', () => {
    expect(matchesMinute(fields('*/15 9-17 * * mon-fri'), new Date('2026-11-23T09:30:00Z'))).toBe(true);
    expect(matchesMinute(fields('*/15 9-17 * * mon-fri'), new Date('2026-11-22T09:30:00Z'))).toBe(false);
    expect(matchesMinute(fields('0 0 1,15 jan *'), new Date('2026-01-15T00:00:30Z'))).toBe(true);
  });
  it('supports pg_cron extras: $ for the last day, macros and N seconds', () => {
    expect(matchesMinute(fields('0 12 $ * *'), new Date('2026-02-28T12:00:00Z'))).toBe(true);
    expect(matchesMinute(fields('0 12 $ * *'), new Date('2026-02-27T12:00:00Z'))).toBe(false);
    expect(matchesMinute(fields('@hourly'), new Date('2026-02-27T05:00:00Z'))).toBe(true);
    expect(parseCronSchedule('30 seconds')).toEqual({ kind: 'seconds', every: 30 });
  });
  it('uses either day field when both are restricted, as cron does', () => {
    expect(matchesMinute(fields('0 0 1 * sun'), new Date('2026-11-22T00:00:00Z'))).toBe(true);
  });
  it('rejects bad schedules', () => {
    for (const bad of ['* * *', '60 * * * *', '90 seconds', '*/0 * * * *', '5-1 * * * *']) {
      expect(() => parseCronSchedule(bad), bad).toThrow(CronSyntaxError);
    }
  });
});
