/**
 * What a channel writes itself (the Telegram webhook's refusals, apology,
 * empty-answer stand-in and default greeting) in every language of
 * BOT_TEXTS: each has every text, its waits said with their number in the
 * form the language's plural rules pick, and none of it is the English.
 */
import { describe, expect, it } from 'vitest';
import { BOT_TEXTS, botTexts } from '../../functions/_shared/chat/bot-texts.ts';

const LANGUAGES = Object.keys(BOT_TEXTS);
const FIXED = ['unavailable', 'failed', 'emptyAnswer', 'greeting'] as const;

describe('Telegram texts in the bot language', () => {
  it('are in all 16 tables, non-empty, and translated', () => {
    expect(LANGUAGES).toHaveLength(16);
    for (const language of LANGUAGES) {
      const texts = BOT_TEXTS[language];
      for (const key of FIXED) {
        expect(texts[key].trim(), `${language}.${key}`).not.toBe('');
        if (language !== 'en') expect(texts[key], `${language}.${key}`).not.toBe(BOT_TEXTS.en[key]);
      }
      for (const [text, english] of [
        [texts.tooFast(30), BOT_TEXTS.en.tooFast(30)],
        [texts.dailyLimit(3 * 3600), BOT_TEXTS.en.dailyLimit(3 * 3600)],
      ]) {
        expect(text, language).not.toMatch(/undefined|NaN|#|\$\{/);
        if (language !== 'en') expect(text, language).not.toBe(english);
      }
    }
  });

  it('say the wait with its number: seconds for a rate limit, minutes under two hours, else hours, rounded up', () => {
    for (const language of LANGUAGES) {
      const texts = BOT_TEXTS[language];
      // Arabic says one and two by the noun alone (ثانية واحدة, ساعتين).
      expect(texts.tooFast(37), language).toContain('37');
      expect(texts.dailyLimit(40 * 60 - 5), language).toContain('40');
      expect(texts.dailyLimit(23 * 3600 + 1), language).toContain('24');
      expect(texts.dailyLimit(7_201), language).toContain('3');
    }
    expect(botTexts('en').dailyLimit(86_400)).toBe(
      "You've used up today's messages with this assistant; please try again in about 24 hours.",
    );
    expect(botTexts('en').tooFast(1)).toBe("You're sending messages too fast; please wait 1 second.");
    expect(botTexts('en').tooFast(2.2)).toBe("You're sending messages too fast; please wait 3 seconds.");
    expect(botTexts('de-AT').tooFast(30)).toBe('Sie senden Nachrichten zu schnell; bitte warten Sie 30 Sekunden.');
    expect(botTexts('de').dailyLimit(5400)).toBe(
      'Sie haben Ihre Nachrichten für heute mit diesem Assistenten aufgebraucht; bitte versuchen Sie es in etwa 90 Minuten noch einmal.',
    );
    expect(botTexts('zh-TW').dailyLimit(3 * 3600)).toBe('您今天與此助理的訊息額度已用完，請在大約3小時後再試。');
    expect(botTexts('ja').tooFast(30)).toContain('30秒');
  });

  it('pick the plural form, in the case the sentence needs', () => {
    expect(botTexts('ru').tooFast(1)).toContain('подождите 1 секунду.');
    expect(botTexts('ru').tooFast(3)).toContain('подождите 3 секунды.');
    expect(botTexts('ru').tooFast(21)).toContain('подождите 21 секунду.');
    expect(botTexts('ru').tooFast(45)).toContain('подождите 45 секунд.');
    expect(botTexts('ru').dailyLimit(21 * 3600)).toContain('через 21 час.');
    expect(botTexts('ru').dailyLimit(22 * 3600)).toContain('через 22 часа.');
    expect(botTexts('ru').dailyLimit(5 * 3600)).toContain('через 5 часов.');
    expect(botTexts('uk').dailyLimit(21 * 3600)).toContain('через 21 годину.');
    expect(botTexts('pl').dailyLimit(22 * 3600)).toContain('za mniej więcej 22 godziny.');
    expect(botTexts('pl').dailyLimit(6 * 3600)).toContain('za mniej więcej 6 godzin.');
    expect(botTexts('pl').tooFast(1)).toContain('poczekaj 1 sekundę.');
    expect(botTexts('ar').dailyLimit(2 * 3600)).toContain('بعد حوالي ساعتين.');
    expect(botTexts('ar').dailyLimit(5 * 3600)).toContain('بعد حوالي 5 ساعات.');
    expect(botTexts('ar').dailyLimit(24 * 3600)).toContain('بعد حوالي 24 ساعة.');
    expect(botTexts('fr').tooFast(1)).toContain('patienter 1 seconde.');
    expect(botTexts('nl').dailyLimit(24 * 3600)).toContain('over ongeveer 24 uur opnieuw');
  });

  it("fall back to English for 'auto' and languages with no table", () => {
    expect(botTexts('auto').greeting).toBe('Hello! Ask me anything.');
    expect(botTexts('sv').unavailable).toBe('This assistant is not available right now. Please try again later.');
    expect(botTexts('zh-CN').failed).toBe(BOT_TEXTS.zh.failed);
    expect(botTexts('zh-HK').failed).toBe(BOT_TEXTS['zh-Hant'].failed);
  });
});
