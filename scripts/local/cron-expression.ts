/**
 * pg_cron's schedule syntax: five fields (minute hour day-of-month month
 * day-of-week, with `*`, lists, ranges and steps, `$` for the last day of the
 * month), the `@hourly`-style macros, and `N seconds` for 1 to 59 seconds.
 * Times are UTC, pg_cron's default `cron.timezone`.
 */

export type CronSchedule =
  | { kind: 'seconds'; every: number }
  | {
      kind: 'fields';
      minutes: Set<number>;
      hours: Set<number>;
      days: Set<number>;
      lastDayOfMonth: boolean;
      months: Set<number>;
      weekdays: Set<number>;
      /** Cron's rule: when both day fields are restricted, either may match. */
      daysRestricted: boolean;
      weekdaysRestricted: boolean;
    };

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

export class CronSyntaxError extends Error {}

function parseField(field: string, min: number, max: number, names: string[] = [], nameBase = 0): Set<number> {
  const values = new Set<number>();
  const value = (text: string): number => {
    const named = names.indexOf(text.toLowerCase());
    const number = named >= 0 ? named + nameBase : Number(text);
    if (!Number.isInteger(number) || number < min || number > max) throw new CronSyntaxError(`value out of range: ${text}`);
    return number;
  };
  for (const part of field.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new CronSyntaxError(`bad step: ${part}`);
    let from: number;
    let to: number;
    if (range === '*') [from, to] = [min, max];
    else if (range.includes('-')) {
      const [a, b] = range.split('-');
      [from, to] = [value(a), value(b)];
    } else {
      from = value(range);
      to = stepText === undefined ? from : max;
    }
    if (from > to) throw new CronSyntaxError(`empty range: ${part}`);
    for (let n = from; n <= to; n += step) values.add(n);
  }
  return values;
}

export function parseCronSchedule(text: string): CronSchedule {
  const trimmed = text.trim().toLowerCase();
  const seconds = /^(\d+)\s+seconds?$/.exec(trimmed);
  if (seconds) {
    const every = Number(seconds[1]);
    if (every < 1 || every > 59) throw new CronSyntaxError(`seconds must be 1 to 59: ${text}`);
    return { kind: 'seconds', every };
  }
  const fields = (MACROS[trimmed] ?? trimmed).split(/\s+/);
  if (fields.length !== 5) throw new CronSyntaxError(`expected 5 fields: ${text}`);
  const [minute, hour, day, month, weekday] = fields;
  const lastDayOfMonth = day === '$';
  const weekdays = parseField(weekday, 0, 7, DAY_NAMES);
  if (weekdays.delete(7)) weekdays.add(0);
  return {
    kind: 'fields',
    minutes: parseField(minute, 0, 59),
    hours: parseField(hour, 0, 23),
    days: lastDayOfMonth ? new Set() : parseField(day, 1, 31),
    lastDayOfMonth,
    months: parseField(month, 1, 12, MONTH_NAMES, 1),
    weekdays,
    daysRestricted: day !== '*',
    weekdaysRestricted: weekday !== '*',
  };
}

/** Whether a five-field schedule fires in the UTC minute that contains `at`. */
export function matchesMinute(schedule: Extract<CronSchedule, { kind: 'fields' }>, at: Date): boolean {
  if (!schedule.minutes.has(at.getUTCMinutes()) || !schedule.hours.has(at.getUTCHours())) return false;
  if (!schedule.months.has(at.getUTCMonth() + 1)) return false;
  const lastDay = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 0)).getUTCDate();
  const dayMatches = schedule.lastDayOfMonth ? at.getUTCDate() === lastDay : schedule.days.has(at.getUTCDate());
  const weekdayMatches = schedule.weekdays.has(at.getUTCDay());
  if (schedule.daysRestricted && schedule.weekdaysRestricted) return dayMatches || weekdayMatches;
  return dayMatches && weekdayMatches;
}
