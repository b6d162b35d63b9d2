/**
 * The bot's own words per language: the no-answer sentence of every language
 * in the table is what the prompt asks for verbatim (for 'auto', all of them
 * listed), is recognised whatever the punctuation, width or spacing, and cites
 * nothing; hand-off, contact and booking texts fall back to English; language
 * tags keep their region or script in the prompt; dates use the bot's locale.
 * Traditional Chinese (script Hant, or TW, HK, MO) has its own texts. An
 * answer holding the sentence beside a cited statement, or after a longer
 * uncited one, is an answer; followed by the bot's contact, any bot contact
 * text's fixed words, an @handle, a domain, the model's own words for reaching
 * a person or its closing sentence of any length, it is a no-answer. Node.js,
 * package.json or 3.Oktober are words, not domains: they weigh.
 */
import { describe, expect, it } from 'vitest';
import { BOT_TEXTS, botTexts } from '../../functions/_shared/chat/bot-texts.ts';
import { NO_ANSWER_REST_LIMIT, noAnswerLanguage } from '../../functions/_shared/chat/escalation.ts';
import {
  buildChatMessages,
  type ChatPromptInput,
  extractCitations,
  isNoAnswer,
  NO_ANSWER_TEXT,
  NO_ANSWER_TEXTS,
} from '../../functions/_shared/chat/index.ts';
import { baseLanguage, dateLocale, languageName, textsLanguage } from '../../functions/_shared/chat/language.ts';

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

const NEW_LANGUAGES = ['tr', 'ar', 'ja', 'zh', 'zh-Hant', 'ko'];
const TRADITIONAL = '抱歉，我在現有的資訊中沒有找到這個問題的答案。';
// Letters and digits, as the weighing counts them (Latin only here).
const letters = (text: string) => text.replace(/[^\p{L}\p{N}]/gu, '').length;
// The model's usual closing after a no-answer, each over the limit on its own.
const CLOSINGS: Record<string, string> = {
  en: 'Please contact our support team via the contact form on our website or give us a call during business hours.',
  fr: "N'hésitez pas à contacter notre équipe d'assistance via le formulaire de contact de notre site web ou à nous " +
    "appeler pendant les heures d'ouverture.",
  de: 'Bitte wenden Sie sich über das Kontaktformular auf unserer Website an unser Support-Team oder rufen Sie uns ' +
    'während der Geschäftszeiten an.',
  es: 'Por favor, póngase en contacto con nuestro equipo de soporte a través del formulario de contacto de nuestro ' +
    'sitio web o llámenos en horario de atención.',
};
const CONTEXT = {
  chunks: [{ chunkId: 1, documentId: 'd1', documentName: 'Manual.pdf', pageStart: 1, pageEnd: 1, content: 'x', score: 0.9 }],
  products: [],
};

describe('no-answer sentences', () => {
  it('have one per language of the bot texts, Turkish, Arabic, Japanese, both Chineses and Korean included', () => {
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

  it('tells Traditional from Simplified Chinese, each its own language', () => {
    expect(NO_ANSWER_TEXTS['zh-Hant']).toBe(TRADITIONAL);
    expect(isNoAnswer(TRADITIONAL)).toBe(true);
    expect(noAnswerLanguage(TRADITIONAL)).toBe('zh-Hant');
    expect(noAnswerLanguage(TRADITIONAL.replace('，', ', '))).toBe('zh-Hant');
    expect(noAnswerLanguage(NO_ANSWER_TEXTS.zh)).toBe('zh');
    expect(extractCitations(TRADITIONAL, CONTEXT)).toEqual([]);
  });

  it('cites nothing for a Turkish or Japanese no-answer even with sources at hand', () => {
    expect(extractCitations(NO_ANSWER_TEXTS.tr, CONTEXT)).toEqual([]);
    expect(extractCitations(NO_ANSWER_TEXTS.ja, CONTEXT)).toEqual([]);
    expect(extractCitations('Kargo iki iş günü sürer.', CONTEXT)).toHaveLength(1);
  });
});

describe('an answer holding the no-answer sentence', () => {
  const citation = { chunk_id: 1, document_id: 'd1', document_name: 'Manual.pdf', page_start: 1, page_end: 1 };

  it('is an answer, with its citations, when it also cites a statement of its own', () => {
    for (
      const partial of [
        `Our store opens at 9:00 [1]. For returns: ${NO_ANSWER_TEXT}`,
        `${NO_ANSWER_TEXT} But our store opens at 9:00 [1].`,
        `Open at 9 [1]. ${NO_ANSWER_TEXT}`,
        `${NO_ANSWER_TEXTS.de} Der Laden öffnet um 9 Uhr [1, 2].`,
        `商店早上九点开门[1]。${NO_ANSWER_TEXTS.zh}`,
      ]
    ) {
      expect(isNoAnswer(partial), partial).toBe(false);
      expect(noAnswerLanguage(partial), partial).toBeNull();
      expect(extractCitations(partial, CONTEXT), partial).toEqual([citation]);
    }
  });

  it(`is an answer when, uncited, what precedes it weighs ${NO_ANSWER_REST_LIMIT} or more (a Han character 3)`, () => {
    expect(isNoAnswer(`${'x'.repeat(NO_ANSWER_REST_LIMIT - 1)} ${NO_ANSWER_TEXT}`)).toBe(true);
    expect(isNoAnswer(`${'x'.repeat(NO_ANSWER_REST_LIMIT)} ${NO_ANSWER_TEXT}`)).toBe(false);
    const uncited = 'Our store opens at 9:00 on weekdays and at 10:00 on Saturdays. Returns are accepted within 30 days ' +
      `at any of our branches. ${NO_ANSWER_TEXT}`;
    expect(isNoAnswer(uncited)).toBe(false);
    // The top source, as for any answer without markers.
    expect(extractCitations(uncited, CONTEXT)).toEqual([citation]);
    const hours = '我们的商店工作日早上九点开门，周末十点开门，退货可在三十天内到任何门店办理。';
    expect(isNoAnswer(`${hours}${NO_ANSWER_TEXTS.zh}`)).toBe(false);
    expect(isNoAnswer(`我们早上九点开门。${NO_ANSWER_TEXTS.zh}`)).toBe(true);
  });

  it("is a no-answer when, uncited, the model's closing of any length follows it", () => {
    for (const [language, closing] of Object.entries(CLOSINGS)) {
      expect(letters(closing), language).toBeGreaterThanOrEqual(NO_ANSWER_REST_LIMIT);
      const answer = `${NO_ANSWER_TEXTS[language]} ${closing}`;
      expect(isNoAnswer(answer), answer).toBe(true);
      expect(noAnswerLanguage(answer), answer).toBe(language);
      expect(extractCitations(answer, CONTEXT), answer).toEqual([]);
    }
    expect(isNoAnswer(`${NO_ANSWER_TEXT} ${'x'.repeat(NO_ANSWER_REST_LIMIT * 3)}`)).toBe(true);
    expect(isNoAnswer(`${NO_ANSWER_TEXTS.zh}我们的商店工作日早上九点开门，周末十点开门，退货可在三十天内到任何门店办理。`)).toBe(true);
  });

  it('is an answer with the closing when a statement outside the sentence is cited', () => {
    for (
      const partial of [
        `Our store opens at 9:00 [1]. For returns: ${NO_ANSWER_TEXT} ${CLOSINGS.en}`,
        `${NO_ANSWER_TEXT} But delivery takes 2 days [1]. ${CLOSINGS.en}`,
        `${NO_ANSWER_TEXT} ${CLOSINGS.en} But delivery takes 2 days [1].`,
        `${NO_ANSWER_TEXTS.de} ${CLOSINGS.de} Der Laden öffnet um 9 Uhr [1].`,
      ]
    ) {
      expect(isNoAnswer(partial), partial).toBe(false);
      expect(extractCitations(partial, CONTEXT), partial).toEqual([citation]);
    }
  });

  it('weighs file names, versions of a framework and sentences run together: they are not domains', () => {
    const tech = 'The plugin works with Node.js, Next.js and Nuxt.js; list it in package.json and enable it in nuxt.config.ts.';
    const moved = 'Ab dem 3.Oktober finden Sie uns wieder in der Laden.Hauptstraße 5, direkt gegenüber vom Hauptbahnhof Mitte.';
    for (const [statement, sentence] of [[tech, NO_ANSWER_TEXT], [moved, NO_ANSWER_TEXTS.de]]) {
      expect(letters(statement), statement).toBeGreaterThanOrEqual(NO_ANSWER_REST_LIMIT);
      expect(isNoAnswer(`${statement} ${sentence}`), statement).toBe(false);
      expect(extractCitations(`${statement} ${sentence}`, CONTEXT), statement).toEqual([citation]);
    }
    // Domains, with or without a path, still weigh nothing.
    const domains = 'Thanks for writing to support.my-long-company-name-online-store.de and shop.kundenservice-beispiel.de!';
    expect(letters(domains)).toBeGreaterThanOrEqual(NO_ANSWER_REST_LIMIT);
    expect(isNoAnswer(`${domains} ${NO_ANSWER_TEXT}`)).toBe(true);
    const paths = 'Everything is at my-long-company-name-online-store.example/support/faq/returns and t.me/shop_support_team.';
    expect(letters(paths)).toBeGreaterThanOrEqual(NO_ANSWER_REST_LIMIT);
    expect(isNoAnswer(`${paths} ${NO_ANSWER_TEXT}`)).toBe(true);
  });

  it('is a no-answer with a short lead-in, a contact after it or a marker on the sentence itself', () => {
    for (
      const noAnswer of [
        NO_ANSWER_TEXT,
        `${NO_ANSWER_TEXT} [1]`,
        `[1] ${NO_ANSWER_TEXT}`,
        `${NO_ANSWER_TEXT.replace(', ', ' [2], ')}`,
        `Thank you for your question! Unfortunately, ${NO_ANSWER_TEXT}`,
        `${NO_ANSWER_TEXT} You can reach a manager at customer.support@my-company-store.example or +49 (30) 123-4567.`,
        `${NO_ANSWER_TEXT} See https://shop.example/contact-us-for-anything-else.`,
        `${NO_ANSWER_TEXTS.zh}您可以通过manager@example.com联系经理。`,
        `${NO_ANSWER_TEXTS.ja}担当者の連絡先はmanager@example.comです。`,
      ]
    ) {
      expect(isNoAnswer(noAnswer), noAnswer).toBe(true);
      // No marker of its own: the top source is not cited for it.
      if (!/\[\d/u.test(noAnswer)) expect(extractCitations(noAnswer, CONTEXT), noAnswer).toEqual([]);
    }
    expect(noAnswerLanguage(`Thank you for your question! Unfortunately, ${NO_ANSWER_TEXT}`)).toBe('en');
  });
});

describe('a no-answer with a way to reach a person', () => {
  const CONTACTS = ['@shop_manager', 'Anna Schmidt, anna@firma.de', 'example.com/kontakt', 't.me/shop_support'];
  const cases = Object.entries(BOT_TEXTS).flatMap(([language, texts]) =>
    CONTACTS.flatMap((contact) => [
      [language, contact, `${texts.noAnswer} ${texts.reachPerson(contact)}`],
      // The hand-off's wording, copied from the history.
      [language, contact, `${texts.noAnswer} ${texts.handoffTransfer(contact)}`],
    ])
  );

  it.each(cases)('is one in %s with the contact %s: %s', (language, contact, answer) => {
    expect(isNoAnswer(answer, contact)).toBe(true);
    expect(noAnswerLanguage(answer, contact)).toBe(language);
    // The contact patterns alone, the bot's contact not given, take these formats out as well.
    expect(isNoAnswer(answer)).toBe(true);
    expect(extractCitations(answer, CONTEXT)).toEqual([]);
  });

  it("is one with the model's own words for the prompt's \"reach a manager at …\" line", () => {
    const german = `${NO_ANSWER_TEXTS.de} Gerne können Sie sich an unseren Kundenservice unter help@example.com wenden.`;
    expect(isNoAnswer(german)).toBe(true);
    expect(noAnswerLanguage(german)).toBe('de');
    const french = `${NO_ANSWER_TEXTS.fr} Vous pouvez contacter notre service client à l'adresse help@example.com.`;
    expect(isNoAnswer(french)).toBe(true);
    // The bot's contact taken out as written, whatever it holds.
    const free = 'Frau Dr. Anna-Maria Schmidt-Kowalczyk (Leitung Kundenservice), Mo–Fr 9–17 Uhr';
    // Before the sentence, where it weighs.
    const named = `Ihre Ansprechpartnerin ist ${free}. ${NO_ANSWER_TEXTS.de}`;
    expect(isNoAnswer(named)).toBe(false);
    expect(isNoAnswer(named, free)).toBe(true);
    expect(isNoAnswer(named, free.toUpperCase())).toBe(true);
  });

  it('is still an answer when it cites a statement of its own, the contact given or not', () => {
    const partial = `Our store opens at 9:00 [1]. For returns: ${NO_ANSWER_TEXT}`;
    expect(isNoAnswer(partial)).toBe(false);
    expect(isNoAnswer(`${partial} ${BOT_TEXTS.en.reachPerson('@shop_manager')}`, '@shop_manager')).toBe(false);
    expect(isNoAnswer(`${NO_ANSWER_TEXTS.de} Unser Laden öffnet um 9 Uhr [1]. Mehr unter example.com/kontakt.`)).toBe(false);
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

  it('asks a Traditional Chinese bot (script Hant, or TW, HK, MO) for the Traditional sentence, others for the Simplified', () => {
    for (const tag of ['zh-Hant', 'zh-TW', 'zh-HK', 'zh-MO', 'zh_TW', 'zh-hant-CN']) {
      expect(system(tag), tag).toContain(`say exactly: "${TRADITIONAL}"`);
      expect(system(tag), tag).not.toContain(NO_ANSWER_TEXTS.zh);
    }
    for (const tag of ['zh', 'zh-CN', 'zh-SG', 'zh-Hans', 'zh-Hans-HK']) {
      expect(system(tag), tag).toContain(`say exactly: "${NO_ANSWER_TEXTS.zh}"`);
      expect(system(tag), tag).not.toContain(TRADITIONAL);
    }
    expect(system('zh-TW')).toContain('Always answer in Chinese (Taiwan) (zh-TW)');
    expect(system('auto')).toContain(`zh-Hant: "${TRADITIONAL}"`);
  });

  it('keys the text tables by base language, Chinese by script', () => {
    expect(textsLanguage('zh-Hant-TW')).toBe('zh-Hant');
    expect(textsLanguage('zh-HK')).toBe('zh-Hant');
    expect(textsLanguage('zh-Hans-TW')).toBe('zh');
    expect(textsLanguage('zh-CN')).toBe('zh');
    expect(textsLanguage('de-AT')).toBe('de');
    expect(textsLanguage('sr-Latn')).toBe('sr');
    expect(textsLanguage('auto')).toBe('auto');
  });
});

describe('bot texts and dates', () => {
  it("fall back to English for 'auto' and for languages with none", () => {
    expect(botTexts('auto')).toBe(BOT_TEXTS.en);
    expect(botTexts('sv')).toBe(BOT_TEXTS.en);
    expect(botTexts('de-AT')).toBe(BOT_TEXTS.de);
    expect(botTexts('zh-CN')).toBe(BOT_TEXTS.zh);
    expect(botTexts('zh-Hant')).toBe(BOT_TEXTS['zh-Hant']);
    expect(botTexts('zh-TW')).toBe(BOT_TEXTS['zh-Hant']);
    expect(botTexts('zh-TW').reachPerson('+886212345678')).toBe('人工客服聯絡方式：+886212345678');
    expect(botTexts('zh-MO').handoffNotify).not.toBe(BOT_TEXTS.zh.handoffNotify);
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
