/**
 * The bot's own words per language: the no-answer sentence of every language
 * in the table is what the prompt asks for verbatim (for 'auto', all of them
 * listed), is recognised whatever the punctuation, width or spacing, and cites
 * nothing; hand-off, contact and booking texts fall back to English; language
 * tags keep their region or script in the prompt; dates use the bot's locale.
 */
import { describe, expect, it } from 'vitest';
import { BOT_TEXTS, botTexts } from '../../functions/_shared/chat/bot-texts.ts';
import { noAnswerLanguage } from '../../functions/_shared/chat/escalation.ts';
import {
  buildChatMessages,
  type ChatPromptInput,
  extractCitations,
  isNoAnswer,
  NO_ANSWER_TEXT,
  NO_ANSWER_TEXTS,
} from '../../functions/_shared/chat/index.ts';
import { baseLanguage, dateLocale, languageName } from '../../functions/_shared/chat/language.ts';

const system = (language: string) => {
  const input: ChatPromptInput = {
    bot: { name: 'Ava', systemPrompt: 'You help customers.', language, managerContact: null },
    history: [],
    question: 'Where is my parcel?',
    chunks: [],
    products: [],
  };
  return buildChatMessages(input)[0].content;
};

const NEW_LANGUAGES = ['tr', 'ar', 'ja', 'zh', 'ko'];

describe('no-answer sentences', () => {
  it('have one per language of the bot texts, Turkish, Arabic, Japanese, Chinese and Korean included', () => {
    for (const language of NEW_LANGUAGES) expect(NO_ANSWER_TEXTS[language]).toBe(BOT_TEXTS[language].noAnswer);
    expect(Object.keys(NO_ANSWER_TEXTS).sort()).toEqual(Object.keys(BOT_TEXTS).sort());
  });

  it.each(Object.entries(NO_ANSWER_TEXTS))('recognises the %s sentence as it is, and names its language', (language, sentence) => {
    expect(isNoAnswer(sentence)).toBe(true);
    expect(isNoAnswer(`  ${sentence}  `)).toBe(true);
    expect(noAnswerLanguage(sentence)).toBe(language);
    // Followed by a contact the model added, and with a marker it should not have written.
    expect(isNoAnswer(`${sentence} [1] help@example.com`)).toBe(true);
  });

  it('recognises them with other punctuation, full-width forms, missing commas or diacritics', () => {
    expect(isNoAnswer(NO_ANSWER_TEXTS.ja.replace('。', '．'))).toBe(true);
    expect(isNoAnswer(NO_ANSWER_TEXTS.ja.replace('、', '').replace('。', '！'))).toBe(true);
    expect(isNoAnswer(NO_ANSWER_TEXTS.zh.replace('，', ', ').replace('。', '!'))).toBe(true);
    expect(isNoAnswer(NO_ANSWER_TEXTS.ko.replace('. ', ' '))).toBe(true);
    // Arabic with the tanween left out, and with an Arabic full stop.
    expect(isNoAnswer(NO_ANSWER_TEXTS.ar.replace('ً', '').replace(/\.$/u, '۔'))).toBe(true);
    expect(isNoAnswer(NO_ANSWER_TEXTS.tr.toLocaleUpperCase('tr'))).toBe(true);
    // Full-width Latin letters (NFKC).
    const fullWidth = [...'Lo siento'].map((c) => (c === ' ' ? '　' : String.fromCodePoint(c.codePointAt(0)! + 0xfee0))).join('');
    expect(isNoAnswer(NO_ANSWER_TEXTS.es.replace('Lo siento', fullWidth))).toBe(true);
  });

  it('does not take an answer that only starts like one for one', () => {
    expect(isNoAnswer('Üzgünüm, bu ürün tükendi [1].')).toBe(false);
    expect(isNoAnswer('申し訳ありませんが、その商品は売り切れです [1]。')).toBe(false);
    expect(isNoAnswer('抱歉，该产品已售罄 [1]。')).toBe(false);
    expect(noAnswerLanguage('Returns take 30 days [1].')).toBeNull();
  });

  it('cites nothing for a Turkish or Japanese no-answer even with sources at hand', () => {
    const context = {
      chunks: [{ chunkId: 1, documentId: 'd1', documentName: 'Manual.pdf', pageStart: 1, pageEnd: 1, content: 'x', score: 0.9 }],
      products: [],
    };
    expect(extractCitations(NO_ANSWER_TEXTS.tr, context)).toEqual([]);
    expect(extractCitations(NO_ANSWER_TEXTS.ja, context)).toEqual([]);
    expect(extractCitations('Kargo iki iş günü sürer.', context)).toHaveLength(1);
  });
});

describe('the prompt', () => {
  it.each(NEW_LANGUAGES)('asks a %s bot for its own sentence, word for word', (language) => {
    const prompt = system(language);
    expect(prompt).toContain(`say exactly: "${NO_ANSWER_TEXTS[language]}"`);
    expect(prompt).not.toContain(NO_ANSWER_TEXT);
  });

  it("lists every sentence for 'auto', to use the one in the user's language", () => {
    const prompt = system('auto');
    expect(prompt).toContain("say exactly the one of these sentences that is in the language of the user's last message");
    for (const [language, sentence] of Object.entries(NO_ANSWER_TEXTS)) expect(prompt).toContain(`${language}: "${sentence}"`);
  });

  it('names the whole tag, region or script kept', () => {
    expect(system('pt-BR')).toContain('Always answer in Brazilian Portuguese (pt-BR)');
    expect(system('pt-BR')).toContain(`say exactly: "${NO_ANSWER_TEXTS.pt}"`);
    expect(languageName('es-419')).toBe('Latin American Spanish (es-419)');
    expect(languageName('zh-Hant')).toBe('Traditional Chinese (zh-Hant)');
    expect(languageName('sr-Latn')).toMatch(/^Serbian.*\(sr-Latn\)$/u);
    expect(languageName('de')).toBe('German (de)');
    expect(languageName('qaa')).toBe('qaa');
    expect(baseLanguage('zh-Hant')).toBe('zh');
    expect(baseLanguage('es-419')).toBe('es');
    expect(baseLanguage('sr-Latn')).toBe('sr');
  });
});

describe('bot texts and dates', () => {
  it("fall back to English for 'auto' and for languages with none", () => {
    expect(botTexts('auto')).toBe(BOT_TEXTS.en);
    expect(botTexts('sv')).toBe(BOT_TEXTS.en);
    expect(botTexts('de-AT')).toBe(BOT_TEXTS.de);
    expect(botTexts('zh-Hant')).toBe(BOT_TEXTS.zh);
    expect(botTexts('de').handoffTransfer('+49301234567')).toContain('+49301234567');
    expect(botTexts('de').handoffTransfer('+49301234567')).not.toContain('You can reach');
  });

  it("write dates in the bot's locale, en-GB for 'auto', a bare 'en' and tags the runtime does not format", () => {
    expect(dateLocale('de')).toBe('de');
    expect(dateLocale('pt-BR')).toBe('pt-BR');
    expect(dateLocale('auto')).toBe('en-GB');
    expect(dateLocale('en')).toBe('en-GB');
    expect(dateLocale('en-US')).toBe('en-US');
    expect(dateLocale('qaa')).toBe('en-GB');
  });
});
