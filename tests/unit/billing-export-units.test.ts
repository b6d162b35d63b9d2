import { describe, expect, it } from 'vitest';
import { matchRoute as accountRoute } from '../../functions/account/router.ts';
import { formatMoney, formatQuantity, formatUnitPrice, minorDigits } from '../../functions/billing/money.ts';
import { renderInvoicePdf } from '../../functions/billing/pdf.ts';
import { matchRoute as billingRoute } from '../../functions/billing/router.ts';
import { csvField, toCsv, toJson } from '../../functions/export/encode.ts';
import { buildManifest } from '../../functions/export/package.ts';
import { matchRoute as exportRoute } from '../../functions/export/router.ts';
import { extractText } from 'unpdf';

describe('invoice money', () => {
  it('prints minor units in the major unit, exactly, with the currency\'s own digits', () => {
    expect(minorDigits('USD')).toBe(2);
    expect(minorDigits('JPY')).toBe(0);
    expect(minorDigits('KWD')).toBe(3);
    expect(formatMoney('4914', 'USD')).toBe('USD 49.14');
    expect(formatMoney('5', 'USD')).toBe('USD 0.05');
    expect(formatMoney('0', 'EUR')).toBe('EUR 0.00');
    expect(formatMoney('1234567891', 'USD')).toBe('USD 12,345,678.91');
    expect(formatMoney('4914', 'JPY')).toBe('JPY 4,914');
    expect(formatMoney('4914', 'KWD')).toBe('KWD 4.914');
    expect(formatMoney('9007199254740993', 'USD')).toBe('USD 90,071,992,547,409.93');
  });

  it('prints fractional unit prices with the digits they need, and quantities without trailing zeros', () => {
    expect(formatUnitPrice('0.2000', 'USD')).toBe('USD 0.002');
    expect(formatUnitPrice('0.0015', 'USD')).toBe('USD 0.000015');
    expect(formatUnitPrice('500.0000', 'USD')).toBe('USD 5.00');
    expect(formatUnitPrice('4900', 'USD')).toBe('USD 49.00');
    expect(formatQuantity('12.500')).toBe('12.5');
    expect(formatQuantity('1.000')).toBe('1');
    expect(formatQuantity('1500.000')).toBe('1,500');
    expect(() => formatMoney('1e5', 'USD')).toThrow(RangeError);
  });

  it('renders a PDF whose text shows the org, the lines and the total; text the font lacks becomes "?"', async () => {
    const pdf = await renderInvoicePdf({
      id: '00000000-0000-4000-8000-000000000001',
      org_name: 'Café 東京',
      plan_name: 'Pro',
      period_start: '2026-02-01',
      period_end: '2026-03-01',
      currency: 'USD',
      subtotal_cents: '4913',
      total_cents: '4913',
      status: 'open',
      created_at: new Date('2026-03-01T02:00:00Z'),
      lines: [
        { position: 1, description: 'Pro plan, February 2026', quantity: '1.000', unit: 'month', unit_price_cents: '4900.0000', amount_cents: '4900' },
        { position: 2, description: 'Chat Tokens beyond the 5,000,000 included: 5,012,500 used', quantity: '12.500', unit: '1k tokens', unit_price_cents: '0.2000', amount_cents: '3' },
      ],
    });
    const { text } = await extractText(pdf, { mergePages: true });
    expect(text).toContain('Café ??');
    expect(text).toContain('2026-02-01 to 2026-02-28');
    expect(text).toContain('USD 49.13');
    expect(text).toContain('USD 0.03');
  });
});

describe('export encoding', () => {
  it('quotes CSV fields as RFC 4180 says, with a header and CRLF', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField({ a: [1, 2] })).toBe('"{""a"":[1,2]}"');
    expect(csvField(true)).toBe('true');
    expect(toCsv([{ id: 1, name: 'x,y' }, { id: 2, name: null }])).toBe('id,name\r\n1,"x,y"\r\n2,\r\n');
    expect(toCsv([])).toBe('');
    expect(JSON.parse(toJson([{ id: 1 }, { id: 2 }]))).toEqual([{ id: 1 }, { id: 2 }]);
    expect(toJson([])).toBe('[]\n');
  });

  it('puts a quote before text a spreadsheet would run as a formula, in CSV only', () => {
    expect(csvField('=HYPERLINK("https://evil.example","x")')).toBe('"\'=HYPERLINK(""https://evil.example"",""x"")"');
    expect(csvField('+1+1')).toBe("'+1+1");
    expect(csvField('-2+3')).toBe("'-2+3");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('\t=1')).toBe("'\t=1");
    expect(csvField('\r=1')).toBe('"\'\r=1"');
    expect(csvField('a=1')).toBe('a=1');
    expect(csvField(-5)).toBe('-5');
    const row = { id: 1, content: '=cmd|\' /C calc\'!A0' };
    expect(toCsv([row])).toBe('id,content\r\n1,\'=cmd|\' /C calc\'!A0\r\n');
    expect(JSON.parse(toJson([row]))).toEqual([row]);
  });
});

describe('export manifest', () => {
  it('says the Storage files are listed (storage_objects), not copied', () => {
    const manifest = buildManifest({
      id: '5e1f0a00-0000-4000-9000-00000000000b',
      org_id: '5e1f0a00-0000-4000-9000-00000000000c',
      requested_by: null,
      status: 'running',
      progress_percent: 95,
      tables: ['organizations', 'storage_objects'],
      storage_prefix: '5e1f0a00-0000-4000-9000-00000000000c/exports/5e1f0a00-0000-4000-9000-00000000000b/',
      error: null,
      steps: 3,
      created_at: new Date('2026-11-24T00:00:00Z'),
      updated_at: new Date('2026-11-24T00:00:00Z'),
      finished_at: null,
      expires_at: null,
      expired_at: null,
    }, [
      { name: 'organizations.json', table: 'organizations', rows: 1, bytes: 10 },
      { name: 'storage_objects.json', table: 'storage_objects', rows: 2, bytes: 20 },
    ], false, new Date('2026-11-24T00:01:00Z'));
    expect(manifest.tables).toEqual([
      { name: 'organizations', rows: 1, files: ['organizations.json'] },
      { name: 'storage_objects', rows: 2, files: ['storage_objects.json'] },
    ]);
    expect(manifest.formats.storage_objects).toMatch(/listed, not copied/);
    expect(manifest.formats.csv).toContain("=, +, -, @, tab or CR has a ' put before it");
  });
});

describe('routes', () => {
  const id = '5e1f0a00-0000-4000-9000-00000000000a';
  it('matches the billing, export and account routes and refuses the rest', () => {
    expect(billingRoute('POST', '/billing')).toEqual({ name: 'renderPdfs' });
    expect(billingRoute('GET', `/functions/v1/billing/invoices/${id}/pdf`)).toEqual({ name: 'invoicePdf', invoiceId: id });
    expect(() => billingRoute('POST', `/billing/invoices/${id}/pdf`)).toThrow(/not supported/);
    expect(() => billingRoute('GET', '/billing/invoices/nope/pdf')).toThrow(/Nothing is served/);
    expect(exportRoute('POST', '/export')).toEqual({ name: 'create' });
    expect(exportRoute('POST', '/export/step')).toEqual({ name: 'step' });
    expect(exportRoute('POST', '/functions/v1/export/expire')).toEqual({ name: 'expire' });
    expect(() => exportRoute('GET', '/export/expire')).toThrow(/not supported/);
    expect(exportRoute('GET', `/export/${id.toUpperCase()}`)).toEqual({ name: 'show', exportId: id });
    expect(() => exportRoute('DELETE', `/export/${id}`)).toThrow(/not supported/);
    expect(accountRoute('DELETE', '/account')).toEqual({ name: 'deleteAccount' });
    expect(accountRoute('DELETE', `/account/organizations/${id}`)).toEqual({ name: 'deleteOrganization', orgId: id });
    expect(accountRoute('POST', '/account/storage-cleanup')).toEqual({ name: 'storageCleanup' });
    expect(() => accountRoute('GET', '/account/elsewhere')).toThrow(/Nothing is served/);
  });
});
