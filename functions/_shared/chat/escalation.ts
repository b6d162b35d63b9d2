import { BOT_TEXTS, NO_ANSWER_TEXTS } from './bot-texts.ts';

/**
 * Whether a user's message asks for a person: "can I talk to a human?",
 * "verbinden Sie mich mit einem Mitarbeiter", "позовите оператора", or just
 * "operator!". English, German, French, Spanish, Italian, Portuguese, Dutch,
 * Russian, Ukrainian and Polish.
 *
 * A request needs a request shape, not just a word: a verb of talking or
 * connecting in the same sentence as a person introduced by a preposition or
 * article ("mit einem Mitarbeiter", "to a manager"), a verb of wanting right
 * before one ("I need an agent", "нужен оператор"), or a message that is
 * nothing but one ("human please"). So "our human resources policy", "how many
 * employees do you have?" and "can my customers chat with an agent on your
 * site?" are not requests. Lexical, so it misses paraphrases ("is anybody
 * there?") and takes a question about reaching a manager ("how do I contact a
 * manager?") as a request, which is what the user needs anyway.
 */
export function detectsHumanRequest(text: string): boolean {
  const normalized = normalize(text);
  if (BARE_REQUESTS.has(bare(normalized))) return true;
  return normalized.split(/[.!?;\n]+/u).some((sentence) => {
    const trimmed = sentence.trim();
    return trimmed !== '' && PATTERNS.some((pattern) => pattern(trimmed));
  });
}

/**
 * Whether an answer is the bot's "no answer" (a sentence of NO_ANSWER_TEXTS,
 * in any of its languages, as the prompt asks the model to say it), or empty.
 * Compared on letters and digits alone: punctuation (。．！ and the like),
 * spaces, [n] markers, case, width (NFKC) and diacritics left out (a model
 * may drop an Arabic tanween or a Japanese comma). A model answering in a
 * language outside the table translates the English sentence: that is missed.
 *
 * Only the sentence with little around it: a lead-in or a way to reach a
 * person after it ("Gerne können Sie sich an unseren Kundenservice unter
 * help@example.com wenden.") is still a no-answer, but an answer that also
 * says something from the sources is a (partial) answer. So what is left once
 * the sentence is taken out must cite nothing (a [n] marker after text of its
 * own; one right after the sentence cites nothing), and what stands before
 * the sentence must hold fewer than NO_ANSWER_REST_LIMIT letters and digits:
 * a statement from the sources precedes the apology, while what follows an
 * uncited one is the model's closing ("Please contact our support team via
 * the contact form on our website …"), however long. Left out of that
 * weighing: the bot's `contact` (its manager_contact, free text: "Anna
 * Schmidt, anna@firma.de"), as written; e-mail addresses, links, domains
 * ("t.me/shop", "example.com/kontakt", "firma.de"; not "Node.js",
 * "package.json" or "3.Oktober"), @handles and phone numbers; and the fixed
 * words of every language's reachPerson and handoffTransfer texts, which a
 * model copies from the history.
 */
export function isNoAnswer(answer: string, contact?: string | null): boolean {
  return noAnswerLanguage(answer, contact) !== null || noAnswerKey(answer) === '';
}

/** The language of the no-answer sentence an answer is ('tr', 'ja', 'zh-Hant', ...; see isNoAnswer), or null. */
export function noAnswerLanguage(answer: string, contact?: string | null): string | null {
  const { key, markers } = markedKey(withoutContact(answer, contact));
  // Where the table's sentences are in the key: [start, end) ranges, each with its language.
  const found = NO_ANSWER_KEYS.flatMap(([language, sentence]) =>
    occurrences(key, sentence).map(([start, end]) => ({ language, start, end }))
  );
  if (found.length === 0) return null;
  // The bot's own contact texts around the sentence weigh nothing, as the sentence does not.
  const contactTexts = CONTACT_TEXT_KEYS.flatMap((text) => occurrences(key, text).map(([start, end]) => ({ start, end })));
  const left = [...found, ...contactTexts];
  // A marker cites the text before it: one inside a sentence or right after it cites none.
  const citesRest = (position: number) =>
    position > 0 && !left.some(({ start, end }) => position > start && position <= end);
  if (markers.some(citesRest)) return null;
  // Uncited, what follows the first sentence is the model's closing ("Please contact our support team …"): only
  // what precedes it, where a statement from the sources would stand, is weighed.
  const first = Math.min(...found.map(({ start }) => start));
  let rest = '';
  let at = 0;
  for (const { start, end } of left.filter(({ start }) => start < first).sort((a, b) => a.start - b.start)) {
    if (start > at) rest += key.slice(at, start);
    at = Math.max(at, end);
  }
  rest += key.slice(at, first);
  const weight = [...rest].reduce((sum, char) => sum + (WIDE_CHAR.test(char) ? 3 : 1), 0);
  return weight < NO_ANSWER_REST_LIMIT ? found[0].language : null;
}

/**
 * Letters and digits (weighted, see WIDE_CHAR) before the sentence from which
 * an uncited answer is one. The citation marker is the real sign of an answer
 * (the prompt asks for one on every statement); this is the backstop for a
 * statement the model left uncited. It lets through a lead-in ("Thank you for
 * your question! Unfortunately,": 36); an uncited statement of two sentences
 * weighs more.
 */
export const NO_ANSWER_REST_LIMIT = 80;

// A Han, kana or Hangul character says about what three Latin letters do (商店, store).
const WIDE_CHAR = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

/** The answer with the bot's contact, as written (any case), blanked out. */
function withoutContact(answer: string, contact: string | null | undefined): string {
  const literal = contact?.trim();
  if (!literal) return answer;
  return answer.replace(new RegExp(literal.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&'), 'giu'), ' ');
}

/** The [start, end) ranges of the key where the sentence is, left to right, not overlapping. */
function occurrences(key: string, sentence: string): [number, number][] {
  const ranges: [number, number][] = [];
  for (let at = key.indexOf(sentence); at !== -1; at = key.indexOf(sentence, at + sentence.length)) {
    ranges.push([at, at + sentence.length]);
  }
  return ranges;
}

/** "[2]", and the lists models also write: "[1, 3]", "[1; 3]". What citations.ts reads as citation markers. */
export const CITATION_MARKER = /\[\d+(?:\s*[,;]\s*\d+)*\]/gu;

const FILE_EXTENSIONS = 'js|ts|json|md|py|txt|csv|pdf|html|css|xml|yml|yaml|sh';

// What a model adds to point to a person rather than to answer: it does not count towards the rest of a no-answer.
// In this order: an e-mail address before the @handle or domain inside it.
// Each is tried at every position of an answer (the model's whole output), so none may scan a run again from each
// of its characters: a match starts after a boundary (a lookbehind) or at a fixed text ("http", "www.", "@"); a
// phone number's run is taken whole up to its last digit, and only the digits among its last six can fail a scan.
const CONTACTS = [
  /(?:https?:\/\/|www\.)\S+/giu,
  // Its local part from the start of its run: from every letter of a long run without an "@" the match scanned the
  // rest of it (32,000 letters: 1.3-1.7 s).
  /(?<![\p{L}\p{N}._%+-])[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+/gu,
  // "@shop_manager" (Telegram, Instagram).
  /(?<![\p{L}\p{N}])@[\p{L}\p{N}_.]{2,}/gu,
  // "example.com/kontakt", "t.me/shop_support": labels and a top-level domain of letters, so "9.00" is none.
  /(?<![\p{L}\p{N}.-])(?:[\p{L}\p{N}-]+\.)+\p{L}{2,24}\/\S*/gu,
  // "firma.de" without a path: lower case ("3.Oktober", "Laden.Hauptstraße" are sentences run together), a top-level
  // domain of 2-6 letters that is not a file's extension ("Node.js", "package.json", "nuxt.config.ts").
  new RegExp(
    `(?<![\\p{L}\\p{N}.-])(?:[\\p{Ll}\\p{N}-]+\\.)+(?!(?:${FILE_EXTENSIONS})(?![\\p{L}\\p{N}]))\\p{Ll}{2,6}` +
      '(?![\\p{L}\\p{N}]|\\.[\\p{L}\\p{N}])',
    'gu',
  ),
  /\+?\d[\d \t().\/-]{5,}\d/gu,
];

/** The answer's key without its markers and contacts, and where in it each marker stood (its key offset). */
function markedKey(answer: string): { key: string; markers: number[] } {
  const markers: number[] = [];
  let key = '';
  answer.split(CITATION_MARKER).forEach((piece, index) => {
    if (index > 0) markers.push(key.length);
    key += noAnswerKey(CONTACTS.reduce((text, contact) => text.replace(contact, ' '), piece));
  });
  return { key, markers };
}

/**
 * Letters and digits run together: combining marks are neither, so a sentence
 * with or without them gives one key. Turkish dotless ı as i: upper-cased, it
 * is an I, which lower-cases to i.
 */
function noAnswerKey(text: string): string {
  return flatten(text.replace(CITATION_MARKER, '')).replace(/ /gu, '').replace(/ı/gu, 'i');
}

const NO_ANSWER_KEYS = Object.entries(NO_ANSWER_TEXTS)
  .map(([language, sentence]) => [language, noAnswerKey(sentence)] as const)
  .filter(([, sentence]) => sentence !== '');

// The fixed words around the contact in every language's reachPerson and handoffTransfer ("You can reach a person at").
const PLACEHOLDER = '\u{E000}';
const CONTACT_TEXT_KEYS = [
  ...new Set(
    Object.values(BOT_TEXTS)
      .flatMap((texts) => [texts.reachPerson(PLACEHOLDER), texts.handoffTransfer(PLACEHOLDER)])
      .flatMap((text) => text.split(PLACEHOLDER))
      .map(noAnswerKey)
      .filter((text) => text !== ''),
  ),
];

/** Compatibility forms folded (full-width letters, ligatures), lower case, one kind of apostrophe, ё as е, single spaces. */
function normalize(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/[’ʼ`´]/gu, "'").replace(/ё/gu, 'е').replace(/[ \t]+/gu, ' ');
}

/** Letters and digits only, single-spaced: punctuation and quotes do not decide a match. */
function flatten(text: string): string {
  return normalize(text).replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
}

// Unicode-aware word boundaries: `\\b` only knows ASCII letters, so it would cut Cyrillic or accented words apart.
// A word may end in an apostrophe and run on ("l'opérateur"), and hyphens join ("кем-нибудь").
const START = '(?<![\\p{L}\\p{N}-])';
const END = "(?:(?<=')|(?![\\p{L}\\p{N}-]))";
const word = (alternatives: string) => `${START}(?:${alternatives})${END}`;
const regex = (source: string) => new RegExp(source, 'u');

type Pattern = (sentence: string) => boolean;

// Up to 6 words between the article or verb and the person (5 in "to one of your real live people"). Unbounded, a
// pattern not anchored to a verb (EN_PERSON first; German "mit" or "einem", also a modifier) read a run of modifiers
// to its end from each of its words: quadratic in the question (8,000 characters of "a ": 370 ms).
const modifierRun = (modifiers: string, space: string) => `(?:${word(modifiers)}${space}){0,6}`;

/** A talking verb anywhere in the sentence together with a person introduced by a preposition or article. */
function verbWithPerson(lang: { verbs: string; intro: string; modifiers: string; targets: string }): Pattern {
  const verb = regex(word(lang.verbs));
  const person = regex(`${word(lang.intro)}\\s*${modifierRun(lang.modifiers, '\\s*')}${word(lang.targets)}`);
  return (sentence) => verb.test(sentence) && person.test(sentence);
}

/** A verb of wanting or calling directly before a person ("нужен оператор", "poproszę konsultanta"). */
function wantPerson(lang: { wants: string; modifiers: string; targets: string }): Pattern {
  const pattern = regex(`${word(lang.wants)}\\s+${modifierRun(lang.modifiers, '\\s*')}${word(lang.targets)}`);
  return (sentence) => pattern.test(sentence);
}

const EN_MODIFIERS = 'a|an|the|your|some|one|of|real|live|actual|human|customer|support|service';
// "human" but not "human resources".
const EN_TARGETS =
  'human(?!\\s+resources?)|humans|person|people|agent|operator|manager|representative|rep|supervisor|' +
  'someone|somebody|staff|employee|customer\\s+(?:service|support)|support\\s+team';
const EN_PERSON = `${modifierRun(EN_MODIFIERS, '\\s+')}${word(EN_TARGETS)}`;
// Where the request may start: the sentence start, or the speaker as subject ("I", "let me", "to" after a want).
const EN_SPEAKER = `(?:^|[,:]\\s*|${word('i|we|me|to|please|pls|wanna|can\\s+i|could\\s+i|may\\s+i|let\\s+me')}\\s+)`;
const EN_TALK = word('talk|speak|chat');
const EN_CONNECT = word('connect|transfer|put|forward|pass|switch|escalate');
const EN_FETCH = word('get|give|find|bring');
const EN_WANT = word("i\\s+(?:want|need|would\\s+like|'d\\s+like|demand)|can\\s+i\\s+(?:get|have)|let\\s+me\\s+have");
// After a bare "I need an agent": the end of the request, so "I need a manager account" does not count.
const EN_END_WORDS = word('please|pls|now|asap|immediately|urgently|instead|who|that|to\\s+help');
const EN_REQUEST_END = `(?=\\s*(?:$|[,:)]|${EN_END_WORDS}))`;

const ENGLISH: Pattern[] = [
  `${EN_SPEAKER}${EN_TALK}\\s+(?:to|with)\\s+${EN_PERSON}`,
  `${EN_CONNECT}\\s+(?:me|this|us)\\s+(?:through\\s+|over\\s+)?(?:to|with)\\s+${EN_PERSON}`,
  `${EN_FETCH}\\s+me\\s+${EN_PERSON}${EN_REQUEST_END}`,
  `${EN_WANT}\\s+${EN_PERSON}${EN_REQUEST_END}`,
  `${EN_PERSON}\\s+(?:i|we)\\s+(?:can|could)\\s+${EN_TALK}\\s+(?:to|with)`,
].map((source) => {
  const pattern = regex(source);
  return (sentence: string) => pattern.test(sentence);
});

const OTHER_LANGUAGES: Pattern[] = [
  // German
  verbWithPerson({
    verbs:
      'sprechen|reden|chatten|verbinden|verbinde|verbindet|weiterleiten|leiten|durchstellen|kontaktieren|erreichen|' +
      'erreiche',
    // Dative and accusative only: "die Mitarbeiter sprechen Englisch" is about them, not a request.
    intro: 'mit|zu|zum|zur|an|einen|einem|einer|den|dem',
    modifiers: 'einem|einen|einer|der|dem|echten|realen|richtigen|menschlichen|lebenden|zuständigen',
    targets: 'mensch|menschen|mitarbeiter|mitarbeiterin|mitarbeitenden|berater|beraterin|ansprechpartner|' +
      'ansprechpartnerin|operator|manager|managerin|vorgesetzten|chef|kundenservice|kundendienst|support|' +
      'jemandem|jemanden|person',
  }),
  wantPerson({
    wants: 'ich\\s+(?:will|möchte|brauche|hätte\\s+gern|hätte\\s+gerne)',
    modifiers: 'einen|einem|eine|echten|richtigen|menschlichen',
    targets: 'menschen|mitarbeiter|mitarbeiterin|berater|beraterin|ansprechpartner|manager',
  }),
  // French
  verbWithPerson({
    verbs: 'parler|discuter|joindre|contacter|passer|passez-moi|transférer|transférez-moi|mettre\\s+en\\s+relation|' +
      'mettez-moi|connecter',
    intro: 'à|a|avec|au|aux|un|une',
    modifiers: "un|une|le|la|l'|vrai|vraie|véritable|être|votre|vos",
    targets: 'humain|humaine|être\\s+humain|conseiller|conseillère|opérateur|opératrice|agent|manager|responsable|' +
      "quelqu'un|personne\\s+réelle|vraie\\s+personne|service\\s+client|gérant|gérante|interlocuteur",
  }),
  wantPerson({
    wants: 'je\\s+(?:veux|voudrais|souhaite|aimerais)',
    modifiers: 'un|une|vrai|vraie|véritable',
    targets: 'humain|conseiller|conseillère|opérateur|opératrice|agent|responsable|personne',
  }),
  // Spanish
  verbWithPerson({
    verbs:
      'hablar|comunicarme|comunicar|contactar|pasarme|pásame|pasame|transferir|transfiérame|conectarme|conécteme|' +
      'conecteme|comuníqueme',
    // No bare articles: "¿el agente puede hablar inglés?" is about the agent.
    intro: 'con|a|al|un|una',
    modifiers: 'un|una|el|la|persona|ser|real|humano|humana|de\\s+verdad',
    targets: 'humano|humana|ser\\s+humano|persona|persona\\s+real|agente|operador|operadora|asesor|asesora|gerente|' +
      'encargado|encargada|supervisor|supervisora|alguien|representante|servicio\\s+al\\s+cliente',
  }),
  wantPerson({
    wants: 'quiero|necesito',
    modifiers: 'un|una|ser|real',
    targets:
      'humano|humana|agente|operador|operadora|asesor|asesora|gerente|encargado|encargada|supervisor|representante',
  }),
  // Italian
  verbWithPerson({
    verbs: 'parlare|parlo|contattare|passarmi|passami|mettermi|collegarmi|collegami|trasferire|trasferirmi',
    intro: 'con|a|al|alla|un|una',
    modifiers: "un|una|un'|l'|il|lo|la|vera|vero|reale",
    targets: 'operatore|operatrice|persona|umano|essere\\s+umano|consulente|agente|responsabile|manager|qualcuno|' +
      'assistenza\\s+clienti',
  }),
  // Portuguese
  verbWithPerson({
    verbs: 'falar|conversar|contatar|contactar|passar|transferir|transfira|conectar|ligar',
    intro: 'com|um|uma|ao|à|para',
    modifiers: 'um|uma|o|a|ser|real|de\\s+verdade',
    targets:
      'humano|humana|ser\\s+humano|pessoa|pessoa\\s+real|atendente|operador|operadora|agente|gerente|consultor|' +
      'consultora|alguém|representante',
  }),
  // Dutch
  verbWithPerson({
    verbs: 'spreken|praten|chatten|verbinden|doorverbinden',
    intro: 'met|een|naar',
    modifiers: 'een|de|het|echte|echt|levende',
    targets: 'mens|medewerker|medewerkster|persoon|operator|manager|iemand|klantenservice|leidinggevende',
  }),
  // Russian (ё is folded to е first)
  verbWithPerson({
    verbs: 'поговорить|говорить|пообщаться|связаться|свяжите|соедините|соединить|переключите|переключить|переведите|' +
      'перевести',
    intro: 'с|со|на',
    modifiers: 'живым|живой|настоящим|реальным|каким-нибудь|кем-нибудь',
    targets: 'человеком|людьми|оператором|оператора|менеджером|менеджера|сотрудником|сотрудника|консультантом|' +
      'консультанта|специалистом|специалиста|администратором|администратора|кем-нибудь|кем-то',
  }),
  wantPerson({
    wants: 'нужен|нужна|хочу|дайте|позовите|позови|пригласите',
    modifiers: 'живого|живой|настоящего|реального',
    targets: 'человек|человека|оператор|оператора|менеджер|менеджера|сотрудник|сотрудника|консультант|консультанта|' +
      'специалист|специалиста|администратор|администратора',
  }),
  // Ukrainian
  verbWithPerson({
    verbs:
      "поговорити|говорити|спілкуватися|зв'язатися|зв'яжіть|з'єднайте|з'єднати|переключіть|переключити|переведіть|" +
      'перевести',
    intro: 'з|із|зі|на',
    modifiers: 'живою|живим|справжньою|справжнім',
    targets:
      'людиною|оператором|оператора|менеджером|менеджера|співробітником|співробітника|консультантом|консультанта|' +
      'працівником|працівника|фахівцем|фахівця|кимось',
  }),
  wantPerson({
    wants: 'потрібен|потрібна|хочу|дайте|покличте|поклич|запросіть',
    modifiers: 'живу|живого|справжню|справжнього',
    targets:
      'людину|людина|оператор|оператора|менеджер|менеджера|співробітник|співробітника|консультант|консультанта|' +
      'фахівець|фахівця',
  }),
  // Polish
  verbWithPerson({
    verbs: 'rozmawiać|porozmawiać|pogadać|połączyć|połącz|połączcie|przełączyć|przełącz|przełączcie|skontaktować|' +
      'przekierować|przekieruj',
    intro: 'z|ze|do|na',
    modifiers: 'prawdziwym|prawdziwą|żywym|żywą',
    targets: 'człowiekiem|konsultantem|konsultantką|operatorem|menedżerem|managerem|kierownikiem|pracownikiem|' +
      'doradcą|osobą|kimś|obsługą\\s+klienta|konsultanta|operatora|człowieka',
  }),
  wantPerson({
    wants: 'chcę|potrzebuję|poproszę|proszę\\s+o|dajcie|daj|zawołaj|zawołajcie',
    modifiers: 'prawdziwego|żywego|prawdziwą|żywą',
    targets: 'człowieka|konsultanta|konsultantkę|operatora|menedżera|managera|kierownika|pracownika|doradcę',
  }),
];

const PATTERNS: Pattern[] = [...ENGLISH, ...OTHER_LANGUAGES];

const PLEASE = new Set(
  [
    'please',
    'pls',
    'plz',
    'now',
    'bitte',
    'svp',
    'stp',
    'por favor',
    'per favore',
    'alsjeblieft',
    'alstublieft',
    'graag',
    'пожалуйста',
    'будь ласка',
    'будь-ласка',
    'proszę',
  ].map((entry) => flatten(entry)),
);

/** A whole message that is just a person to ask for, once politeness and punctuation are gone. */
const BARE_REQUESTS = new Set(
  [
    'human',
    'a human',
    'human agent',
    'operator',
    'an operator',
    'agent',
    'an agent',
    'live agent',
    'real agent',
    'manager',
    'a manager',
    'representative',
    'a representative',
    'real person',
    'a real person',
    'person',
    'live person',
    'human being',
    'a human being',
    'someone real',
    'customer service',
    'mensch',
    'ein mensch',
    'echter mensch',
    'mitarbeiter',
    'berater',
    'kundenservice',
    'humain',
    'un humain',
    'opérateur',
    'un opérateur',
    'conseiller',
    'un conseiller',
    'agent humain',
    'humano',
    'un humano',
    'operador',
    'un operador',
    'agente',
    'un agente',
    'persona real',
    'asesor',
    'operatore',
    'un operatore',
    'umano',
    'persona',
    'atendente',
    'pessoa',
    'medewerker',
    'mens',
    'оператор',
    'оператора',
    'менеджер',
    'менеджера',
    'человек',
    'живой человек',
    'живого человека',
    'людина',
    'жива людина',
    'живу людину',
    'консультант',
    'консультанта',
    'konsultant',
    'konsultanta',
    'człowiek',
    'człowieka',
    'operatora',
  ].map((entry) => flatten(entry)),
);

/** The message without punctuation and without the polite words around the request. */
function bare(normalized: string): string {
  const words = flatten(normalized).split(' ');
  const polite = (from: number, to: number) => PLEASE.has(words.slice(from, to).join(' '));
  let start = 0;
  let end = words.length;
  for (;;) {
    if (end - start > 2 && polite(start, start + 2)) start += 2;
    else if (end - start > 1 && polite(start, start + 1)) start += 1;
    else if (end - start > 2 && polite(end - 2, end)) end -= 2;
    else if (end - start > 1 && polite(end - 1, end)) end -= 1;
    else break;
  }
  return words.slice(start, end).join(' ');
}
