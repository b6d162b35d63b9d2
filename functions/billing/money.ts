/**
 * Amounts as they are printed on an invoice. The database keeps money in a
 * currency's minor units (`*_cents`: cents for USD, yen for JPY, fils for
 * KWD) and unit prices in fractional minor units (0.2 cents per 1k tokens),
 * and postgres.js hands bigint and numeric columns over as strings. Every
 * conversion here is done on the decimal strings, never through a float, so
 * "USD 0.002" and "USD 12,345,678.91" print exactly as stored.
 */

/** Digits after the decimal point of the currency's major unit (2 for USD, 0 for JPY, 3 for KWD). */
export function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    // Not a currency Intl knows (the column only checks the ISO 4217 shape): two, as most have.
    return 2;
  }
}

interface Decimal {
  negative: boolean;
  /** Digits before the point, without leading zeros ("0" for none). */
  whole: string;
  /** Digits after the point, as stored. */
  fraction: string;
}

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

function parseDecimal(value: string): Decimal {
  const match = DECIMAL.exec(value.trim());
  if (!match) throw new RangeError(`not a decimal number: ${value}`);
  return { negative: match[1] === '-', whole: match[2].replace(/^0+(?=\d)/, ''), fraction: match[3] ?? '' };
}

/** value / 10^places, exactly. */
function shiftLeft(value: Decimal, places: number): Decimal {
  const padded = value.whole.padStart(places + 1, '0');
  const cut = padded.length - places;
  return {
    negative: value.negative,
    whole: padded.slice(0, cut).replace(/^0+(?=\d)/, ''),
    fraction: padded.slice(cut) + value.fraction,
  };
}

function groupThousands(whole: string): string {
  return whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** At least `min` and at most `max` fraction digits; beyond `min`, trailing zeros are dropped. */
function render(value: Decimal, min: number, max: number): string {
  let fraction = value.fraction.slice(0, max);
  if (value.fraction.length > max && /[1-9]/.test(value.fraction.slice(max))) {
    // Only unit prices can have more digits than shown (4 decimals of a minor unit): mark the cut.
    fraction = fraction.padEnd(max, '0');
  }
  fraction = fraction.padEnd(min, '0');
  while (fraction.length > min && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  const isZero = !/[1-9]/.test(value.whole + fraction);
  const sign = value.negative && !isZero ? '-' : '';
  return `${sign}${groupThousands(value.whole)}${fraction ? `.${fraction}` : ''}`;
}

/** A whole number of minor units in the major unit: formatMoney("123456", "USD") is "USD 1,234.56". */
export function formatMoney(minorUnits: string | number | bigint, currency: string): string {
  const digits = minorDigits(currency);
  return `${currency} ${render(shiftLeft(parseDecimal(String(minorUnits)), digits), digits, digits)}`;
}

/**
 * A unit price given in fractional minor units, in the major unit with as
 * many digits as it needs: formatUnitPrice("0.2000", "USD") is "USD 0.002",
 * formatUnitPrice("500.0000", "USD") is "USD 5.00".
 */
export function formatUnitPrice(minorUnits: string | number, currency: string): string {
  const digits = minorDigits(currency);
  return `${currency} ${render(shiftLeft(parseDecimal(String(minorUnits)), digits), digits, digits + 4)}`;
}

/** A quantity (numeric(20, 3)) without trailing zeros: "12.345", "1", "1,500". */
export function formatQuantity(quantity: string | number): string {
  return render(parseDecimal(String(quantity)), 0, 3);
}
