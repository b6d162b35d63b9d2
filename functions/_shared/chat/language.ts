/**
 * A bot's language setting: 'auto' (answer in the user's language) or a
 * BCP 47 tag ('de', 'pt-BR', 'es-419', 'zh-Hant', 'sr-Latn').
 */

/** 'de-AT' → 'de', 'zh-Hant' → 'zh'; 'auto' stays; lower-cased. What the per-language tables are keyed by. */
export function baseLanguage(language: string): string {
  return language.trim().toLowerCase().split(/[-_]/u)[0] || 'auto';
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
