/**
 * A bot's language setting: 'auto' (answer in the user's language) or a
 * BCP 47 tag ('de', 'pt-BR', 'es-419', 'zh-Hant', 'sr-Latn').
 */

/** 'de-AT' → 'de', 'zh-Hant' → 'zh'; 'auto' stays; lower-cased. */
export function baseLanguage(language: string): string {
  return language.trim().toLowerCase().split(/[-_]/u)[0] || 'auto';
}

// The regions that write Chinese in Traditional characters when a tag names no script.
const TRADITIONAL_CHINESE_REGIONS = new Set(['TW', 'HK', 'MO']);

/**
 * What the per-language text tables are keyed by: the base language ('de-AT'
 * → 'de'), except Chinese, whose two scripts are two tables: 'zh-Hant' for
 * script Hant, or for regions TW, HK and MO when no script is named
 * ('zh-TW', 'zh-Hant-CN'); 'zh' for the rest ('zh-CN', 'zh-Hans-HK').
 */
export function textsLanguage(language: string): string {
  const base = baseLanguage(language);
  const tag = base === 'zh' ? canonicalTag(language) : null;
  if (tag === null) return base;
  const { script, region } = new Intl.Locale(tag);
  const traditional = script ? script === 'Hant' : region !== undefined && TRADITIONAL_CHINESE_REGIONS.has(region);
  return traditional ? 'zh-Hant' : 'zh';
}

/** The tag in its canonical casing ('pt-br' → 'pt-BR'); null when it is not a well-formed tag ('auto' is not one). */
function canonicalTag(language: string): string | null {
  try {
    return Intl.getCanonicalLocales(language.trim().replace(/_/gu, '-'))[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * "German (de)", "Brazilian Portuguese (pt-BR)", "Traditional Chinese
 * (zh-Hant)": the whole tag named, so a region or script is kept. The tag
 * alone when the runtime has no name for it.
 */
export function languageName(language: string): string {
  const tag = canonicalTag(language) ?? language.trim();
  try {
    const name = new Intl.DisplayNames(['en'], { type: 'language' }).of(tag);
    return name && name !== tag ? `${name} (${tag})` : tag;
  } catch {
    return tag;
  }
}

/**
 * The locale dates are written in for a bot: its own tag when the runtime
 * formats it, else en-GB (also for 'auto', whose user's language is not
 * known, and for a bare 'en', whose default would be the 12-hour US clock).
 */
export function dateLocale(language: string): string {
  const tag = canonicalTag(language);
  if (tag === null || tag === 'en') return 'en-GB';
  return Intl.DateTimeFormat.supportedLocalesOf(tag).length > 0 ? tag : 'en-GB';
}
