import type { Sql } from 'postgres';
import { CronSyntaxError, matchesMinute, parseCronSchedule, type CronSchedule } from './cron-expression.ts';

/**
 * Does locally what pg_cron and pg_net's background workers do on Supabase:
 * runs due `cron.job` commands as the job's user, writing `cron.job_run_details`,
 * and sends the requests queued in `net.http_request_queue`, writing each answer
 * to `net._http_response`. It is an ordinary client of the wire server, so jobs
 * run through the same path as any other connection.
 */

interface CronJob {
  jobid: string;
  schedule: string;
  command: string;
  username: string;
}

interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string> | null;
  body: Buffer | null;
  timeout_milliseconds: number;
}

export interface SchedulerOptions {
  sql: Sql;
  now?: () => Date;
  fetch?: typeof fetch;
  log?: (line: string) => void;
  /** How many queued HTTP requests one drain sends at most, concurrently. */
  httpBatchSize?: number;
}

/** Answer bodies are stored as text, capped so one large response cannot bloat the table. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
/** pg_net.ttl's default: how long answers are kept. */
const RESPONSE_TTL_MS = 6 * 60 * 60 * 1000;
/** Hosted Realtime drops realtime.messages' daily partitions; the local table is one, so rows go after a day. */
const REALTIME_MESSAGE_TTL_MS = 24 * 60 * 60 * 1000;
const PURGE_EVERY_MS = 60 * 1000;

export class Scheduler {
  private readonly sql: Sql;
  private readonly now: () => Date;
  private readonly fetch: typeof fetch;
  private readonly log: (line: string) => void;
  private readonly httpBatchSize: number;
  /** Per job: when it last started (ms), so a minute fires once and `N seconds` keeps its pace. */
  private readonly lastStarted = new Map<string, number>();
  private readonly running = new Set<string>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private stopped = false;
  /** The drain a wake-up started, if it is still dequeuing; wake-ups meanwhile ask it for one more pass. */
  private waking: Promise<void> | null = null;
  private wokenAgain = false;
  /** When the answers older than their TTL were last deleted (ms of `now`), or null before the first time. */
  private lastPurged: number | null = null;

  constructor(options: SchedulerOptions) {
    this.sql = options.sql;
    this.now = options.now ?? (() => new Date());
    this.fetch = options.fetch ?? fetch;
    this.log = options.log ?? (() => undefined);
    this.httpBatchSize = options.httpBatchSize ?? 50;
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.inFlight]);
  }

  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.startDueJobs();
      await this.drainHttpQueue();
      await this.purgeExpiredResponses();
    } catch (error) {
      this.log(`scheduler: ${(error as Error).message}`);
    } finally {
      this.ticking = false;
    }
  }

  /** Starts every active job due now (without waiting for it); returns their ids. */
  async startDueJobs(): Promise<string[]> {
    const at = this.now();
    const jobs = await this.sql<CronJob[]>`
      select jobid::text, schedule, command, username from cron.job where active order by jobid`;
    const started: string[] = [];
    for (const job of jobs) {
      if (this.running.has(job.jobid) || !this.isDue(job, at)) continue;
      this.lastStarted.set(job.jobid, at.getTime());
      started.push(job.jobid);
      this.track(this.runJob(job));
    }
    return started;
  }

  /** Waits for the jobs and requests started so far. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private track(work: Promise<unknown>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private isDue(job: CronJob, at: Date): boolean {
    let schedule: CronSchedule;
    try {
      schedule = parseCronSchedule(job.schedule);
    } catch (error) {
      if (error instanceof CronSyntaxError) return false;
      throw error;
    }
    const last = this.lastStarted.get(job.jobid);
    if (schedule.kind === 'seconds') return last === undefined || at.getTime() - last >= schedule.every * 1000;
    const minute = Math.floor(at.getTime() / 60_000);
    if (last !== undefined && Math.floor(last / 60_000) === minute) return false;
    return matchesMinute(schedule, at);
  }

  private async runJob(job: CronJob): Promise<void> {
    this.running.add(job.jobid);
    try {
      const [run] = await this.sql<{ runid: string }[]>`
        insert into cron.job_run_details (jobid, job_pid, database, username, command, status, start_time)
        values (${job.jobid}, ${process.pid}, current_database(), ${job.username}, ${job.command}, 'running', ${this.now()})
        returning runid::text`;
      let status = 'succeeded';
      let message: string;
      try {
        const results = await this.runAs(job.username, job.command);
        // One statement yields one result; several yield a list of them. pg_cron reports the last tag.
        type Outcome = { command?: string; count?: number };
        const outcome = results as unknown as Outcome & Outcome[];
        const last: Outcome = ('command' in outcome ? outcome : outcome[outcome.length - 1]) ?? {};
        message = [last.command, last.count].filter((part) => part !== undefined && part !== null).join(' ');
      } catch (error) {
        status = 'failed';
        message = (error as Error).message;
        this.log(`cron job ${job.jobid} failed: ${message}`);
      }
      await this.sql`
        update cron.job_run_details set status = ${status}, return_message = ${message}, end_time = ${this.now()}
        where runid = ${run.runid}`;
    } finally {
      this.running.delete(job.jobid);
    }
  }

  /**
   * Runs a command as pg_cron does: as the job's user, outside any transaction block, so a DO block or a
   * procedure it runs may commit as it goes (the invoice job, generate-invoices, is a DO block that commits
   * after each org). Several statements in one command run in one implicit transaction, as they do there.
   * No statement_timeout is set here; hosted Supabase's (2 minutes) is why that job stops itself at 100 s.
   */
  private async runAs(username: string, command: string): Promise<unknown> {
    const session = await this.sql.reserve();
    try {
      await session`select set_config('role', ${username}, false)`;
      return await session.unsafe(command).simple();
    } finally {
      await session`reset role`.catch(() => undefined);
      session.release();
    }
  }

  /**
   * What pg_net's worker does with answers older than pg_net.ttl (6 hours by default): deletes them, so
   * net._http_response does not grow for ever; and what hosted Realtime's dropping of daily partitions does:
   * deletes realtime.messages older than a day. On the tick, at most once a minute; the answers deleted, or
   * null when it skipped.
   */
  async purgeExpiredResponses(): Promise<number | null> {
    const at = this.now().getTime();
    if (this.lastPurged !== null && at - this.lastPurged < PURGE_EVERY_MS) return null;
    this.lastPurged = at;
    const deleted = await this.sql`delete from net._http_response where created < ${new Date(at - RESPONSE_TTL_MS)}`;
    // inserted_at is a timestamp without time zone, its default now() in the session's zone: compared in it.
    await this.sql`
      delete from realtime.messages where inserted_at < ${new Date(at - REALTIME_MESSAGE_TTL_MS)}::timestamptz::timestamp`;
    return deleted.count;
  }

  /** Sends up to one batch of queued requests, concurrently, and records each outcome. */
  async drainHttpQueue(): Promise<number> {
    const { count, sent } = await this.dequeueAndSend();
    await sent;
    return count;
  }

  /**
   * What pg_net's worker does when `net.wake()` signals it (pg_net 0.19 wakes
   * on every request call rather than polling): dequeue everything now, batch
   * by batch, without waiting for the answers of one batch before the next,
   * instead of leaving the requests for the next tick. Wake-ups during a drain
   * coalesce into one more pass.
   */
  wake(): void {
    if (this.stopped) return;
    if (this.waking) {
      this.wokenAgain = true;
      return;
    }
    const drain = async () => {
      do {
        this.wokenAgain = false;
        let dequeued: number;
        do {
          ({ count: dequeued } = await this.dequeueAndSend());
        } while (dequeued === this.httpBatchSize && !this.stopped);
      } while (this.wokenAgain && !this.stopped);
    };
    this.waking = drain()
      .catch((error: unknown) => this.log(`scheduler: ${(error as Error).message}`))
      .finally(() => {
        this.waking = null;
      });
    this.track(this.waking);
  }

  private async dequeueAndSend(): Promise<{ count: number; sent: Promise<unknown> }> {
    const requests = await this.sql<QueuedRequest[]>`
      delete from net.http_request_queue
      where id in (select id from net.http_request_queue order by id limit ${this.httpBatchSize} for update skip locked)
      returning id::text, method, url, headers, body, timeout_milliseconds`;
    const sent = Promise.all(requests.map((request) => this.send(request)));
    this.track(sent);
    return { count: requests.length, sent };
  }

  private async send(request: QueuedRequest): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), request.timeout_milliseconds);
    try {
      const response = await this.fetch(request.url, {
        method: request.method,
        headers: request.headers ?? {},
        body: request.body && request.method !== 'GET' ? new Uint8Array(request.body) : undefined,
        signal: controller.signal,
      });
      const bytes = new Uint8Array(await response.arrayBuffer());
      const content = new TextDecoder().decode(bytes.subarray(0, MAX_RESPONSE_BYTES));
      await this.sql`
        insert into net._http_response (id, status_code, content_type, headers, content, timed_out)
        values (${request.id}, ${response.status}, ${response.headers.get('content-type')},
                ${this.sql.json(Object.fromEntries(response.headers))}, ${content}, false)`;
    } catch (error) {
      const timedOut = controller.signal.aborted;
      const message = timedOut ? `Timeout of ${request.timeout_milliseconds} ms reached` : (error as Error).message;
      await this.sql`
        insert into net._http_response (id, timed_out, error_msg)
        values (${request.id}, ${timedOut}, ${message})`;
    } finally {
      clearTimeout(timer);
    }
  }
}
