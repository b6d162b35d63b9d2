/**
 * What the bot writes itself, with no model: the no-answer sentence (the
 * model is told to say it verbatim, and isNoAnswer recognises it), the
 * hand-off, the contact added after a no-answer, the booking step's
 * confirmations and refusals, and what a channel tells its chat itself (the
 * Telegram webhook's refusals, apology, empty-answer stand-in and default
 * greeting). One set per language a bot is most often fixed to, keyed by
 * textsLanguage (the base language; Chinese by script, 'zh' and 'zh-Hant');
 * English for 'auto' and for the rest.
 */
import { textsLanguage } from './language.ts';

export interface BotTexts {
  /** What the bot says when its sources do not hold the answer. */
  noAnswer: string;
  /** The hand-off when the bot's escalation action is `transfer` and it has a contact. */
  handoffTransfer: (contact: string) => string;
  /** The hand-off when the action is `log`: nobody is told. */
  handoffLog: string;
  /** The hand-off when the action is `notify` (or `transfer` with no contact). */
  handoffNotify: string;
  /** Added after a no-answer by a `transfer` bot with a contact. */
  reachPerson: (contact: string) => string;
  booked: (when: string, attendee: string) => string;
  /** A connected calendar could not be read, so the time cannot be confirmed free (nor any other offered). */
  calendarUnavailable: string;
  slotUnavailable: string;
  /** Another booking took the slot between the check and the insert. */
  slotTaken: string;
  /** The attendee's details refused by the database; `reason` is its (English) message. */
  cannotBook: (reason: string) => string;
  nextFreeTimes: (times: string[]) => string;
  noFreeTime: string;
  /** The time was refused, and the calendars could not all be read to offer others. */
  cannotSuggest: string;
  /** A channel's refusal when the bot does not answer (disabled, the channel off, over the org's quota). */
  unavailable: string;
  /** A per-minute rate limit's refusal; `seconds` is the wait (Retry-After). */
  tooFast: (seconds: number) => string;
  /** The end user's daily budget's refusal; `seconds` is the wait, said rounded up in minutes or hours. */
  dailyLimit: (seconds: number) => string;
  /** A channel's apology when the model failed after the question was stored. */
  failed: string;
  /** Sent for an answer the model left empty where no empty message can be sent (Telegram). */
  emptyAnswer: string;
  /** The greeting of a bot with none of its own. */
  greeting: string;
}

type PluralCategory = 'zero' | 'one' | 'two' | 'few' | 'many' | 'other';
/** A unit with its number ('#'), per plural category, in the grammatical case its sentences need. */
type Forms = { other: string } & Partial<Record<PluralCategory, string>>;

interface Counts {
  /** "30 seconds", "1 Sekunde", "21 секунду". */
  seconds: (seconds: number) => string;
  /** A wait, rounded up: minutes under two hours ("40 minutes"), else hours ("3 hours"). */
  wait: (seconds: number) => string;
}

/** Numbers of seconds, minutes and hours in a language: its plural rules (CLDR, Intl.PluralRules) pick the form. */
function counts(locale: string, forms: { seconds: Forms; minutes: Forms; hours: Forms }): Counts {
  const rules = new Intl.PluralRules(locale);
  const say = (count: number, unit: Forms) => (unit[rules.select(count)] ?? unit.other).replace('#', String(count));
  return {
    seconds: (seconds) => say(Math.max(1, Math.ceil(seconds)), forms.seconds),
    wait: (seconds) =>
      seconds < 2 * 3600 ? say(Math.max(1, Math.ceil(seconds / 60)), forms.minutes) : say(Math.ceil(seconds / 3600), forms.hours),
  };
}

const EN = counts('en', {
  seconds: { one: '# second', other: '# seconds' },
  minutes: { one: '# minute', other: '# minutes' },
  hours: { one: '# hour', other: '# hours' },
});
const DE = counts('de', {
  seconds: { one: '# Sekunde', other: '# Sekunden' },
  minutes: { one: '# Minute', other: '# Minuten' },
  hours: { one: '# Stunde', other: '# Stunden' },
});
const FR = counts('fr', {
  seconds: { one: '# seconde', other: '# secondes' },
  minutes: { one: '# minute', other: '# minutes' },
  hours: { one: '# heure', other: '# heures' },
});
const ES = counts('es', {
  seconds: { one: '# segundo', other: '# segundos' },
  minutes: { one: '# minuto', other: '# minutos' },
  hours: { one: '# hora', other: '# horas' },
});
const IT = counts('it', {
  seconds: { one: '# secondo', other: '# secondi' },
  minutes: { one: '# minuto', other: '# minuti' },
  hours: { one: '# ora', other: '# ore' },
});
const PT = counts('pt', {
  seconds: { one: '# segundo', other: '# segundos' },
  minutes: { one: '# minuto', other: '# minutos' },
  hours: { one: '# hora', other: '# horas' },
});
const NL = counts('nl', {
  seconds: { one: '# seconde', other: '# seconden' },
  minutes: { one: '# minuut', other: '# minuten' },
  hours: { other: '# uur' },
});
// Accusative, as after "подождите" and "через".
const RU = counts('ru', {
  seconds: { one: '# секунду', few: '# секунды', many: '# секунд', other: '# секунды' },
  minutes: { one: '# минуту', few: '# минуты', many: '# минут', other: '# минуты' },
  hours: { one: '# час', few: '# часа', many: '# часов', other: '# часа' },
});
// Accusative, as after "зачекайте" and "через".
const UK = counts('uk', {
  seconds: { one: '# секунду', few: '# секунди', many: '# секунд', other: '# секунди' },
  minutes: { one: '# хвилину', few: '# хвилини', many: '# хвилин', other: '# хвилини' },
  hours: { one: '# годину', few: '# години', many: '# годин', other: '# години' },
});
// Accusative, as after "poczekaj" and "za".
const PL = counts('pl', {
  seconds: { one: '# sekundę', few: '# sekundy', many: '# sekund', other: '# sekundy' },
  minutes: { one: '# minutę', few: '# minuty', many: '# minut', other: '# minuty' },
  hours: { one: '# godzinę', few: '# godziny', many: '# godzin', other: '# godziny' },
});
const TR = counts('tr', { seconds: { other: '# saniye' }, minutes: { other: '# dakika' }, hours: { other: '# saat' } });
// Accusative and genitive, as after "الانتظار" and "بعد حوالي": one and two said by the noun alone.
const AR = counts('ar', {
  seconds: { one: 'ثانية واحدة', two: 'ثانيتين', few: '# ثوانٍ', other: '# ثانية' },
  minutes: { one: 'دقيقة واحدة', two: 'دقيقتين', few: '# دقائق', other: '# دقيقة' },
  hours: { one: 'ساعة واحدة', two: 'ساعتين', few: '# ساعات', other: '# ساعة' },
});
const JA = counts('ja', { seconds: { other: '#秒' }, minutes: { other: '#分' }, hours: { other: '#時間' } });
const ZH = counts('zh', { seconds: { other: '#秒' }, minutes: { other: '#分钟' }, hours: { other: '#小时' } });
const ZH_HANT = counts('zh-Hant', { seconds: { other: '#秒' }, minutes: { other: '#分鐘' }, hours: { other: '#小時' } });
const KO = counts('ko', { seconds: { other: '#초' }, minutes: { other: '#분' }, hours: { other: '#시간' } });

const ENGLISH: BotTexts = {
  noAnswer: "I'm sorry, I couldn't find the answer to that in the information I have.",
  handoffTransfer: (contact) => `I'm passing you to a person. You can reach them at ${contact}.`,
  handoffLog: "I've noted that you'd like to talk to a person.",
  handoffNotify: "I've let the team know you'd like to talk to a person; someone will get back to you here.",
  reachPerson: (contact) => `You can reach a person at ${contact}.`,
  booked: (when, attendee) => `You're booked for ${when}, ${attendee}.`,
  calendarUnavailable:
    "I can't confirm that time right now: one of the calendars could not be checked. Please try again later.",
  slotUnavailable: "That time isn't available.",
  slotTaken: 'That time was just taken.',
  cannotBook: (reason) => `I couldn't book that: ${reason}`,
  nextFreeTimes: (times) => `The next free times are: ${times.join('; ')}.`,
  noFreeTime: 'There is no free time in the week after it.',
  cannotSuggest:
    "I can't suggest other times right now: one of the calendars could not be checked. Please try again later.",
  unavailable: 'This assistant is not available right now. Please try again later.',
  tooFast: (seconds) => `You're sending messages too fast; please wait ${EN.seconds(seconds)}.`,
  dailyLimit: (seconds) =>
    `You've used up today's messages with this assistant; please try again in about ${EN.wait(seconds)}.`,
  failed: "Sorry, I couldn't answer just now. Please try again in a moment.",
  emptyAnswer: "I couldn't come up with an answer to that. Could you put it another way?",
  greeting: 'Hello! Ask me anything.',
};

export const BOT_TEXTS: Readonly<Record<string, BotTexts>> = {
  en: ENGLISH,
  de: {
    noAnswer: 'Es tut mir leid, dazu habe ich in meinen Informationen keine Antwort gefunden.',
    handoffTransfer: (contact) => `Ich leite Sie an eine Ansprechperson weiter. Sie erreichen sie unter ${contact}.`,
    handoffLog: 'Ich habe notiert, dass Sie mit einer Person sprechen möchten.',
    handoffNotify:
      'Ich habe dem Team Bescheid gegeben, dass Sie mit einer Person sprechen möchten; jemand meldet sich hier bei Ihnen.',
    reachPerson: (contact) => `Eine Ansprechperson erreichen Sie unter ${contact}.`,
    booked: (when, attendee) => `Ihr Termin ist gebucht: ${when}, ${attendee}.`,
    calendarUnavailable:
      'Ich kann diese Zeit gerade nicht bestätigen: Einer der Kalender konnte nicht geprüft werden. Bitte versuchen Sie es später noch einmal.',
    slotUnavailable: 'Diese Zeit ist nicht verfügbar.',
    slotTaken: 'Diese Zeit wurde gerade vergeben.',
    cannotBook: (reason) => `Das konnte ich nicht buchen: ${reason}`,
    nextFreeTimes: (times) => `Die nächsten freien Zeiten sind: ${times.join('; ')}.`,
    noFreeTime: 'In der Woche danach gibt es keine freie Zeit.',
    cannotSuggest:
      'Andere Zeiten kann ich gerade nicht vorschlagen: Einer der Kalender konnte nicht geprüft werden. Bitte versuchen Sie es später noch einmal.',
    unavailable: 'Dieser Assistent ist gerade nicht verfügbar. Bitte versuchen Sie es später noch einmal.',
    tooFast: (seconds) => `Sie senden Nachrichten zu schnell; bitte warten Sie ${DE.seconds(seconds)}.`,
    dailyLimit: (seconds) =>
      `Sie haben Ihre Nachrichten für heute mit diesem Assistenten aufgebraucht; bitte versuchen Sie es in etwa ${DE.wait(seconds)} noch einmal.`,
    failed: 'Entschuldigung, ich konnte gerade nicht antworten. Bitte versuchen Sie es gleich noch einmal.',
    emptyAnswer: 'Darauf habe ich leider keine Antwort gefunden. Könnten Sie die Frage anders formulieren?',
    greeting: 'Hallo! Was möchten Sie wissen?',
  },
  fr: {
    noAnswer: "Désolé, je n'ai pas trouvé la réponse à cette question dans les informations dont je dispose.",
    handoffTransfer: (contact) => `Je vous mets en relation avec une personne de l'équipe. Vous pouvez la joindre ici : ${contact}.`,
    handoffLog: "J'ai noté que vous souhaitez parler à une personne.",
    handoffNotify: "J'ai prévenu l'équipe que vous souhaitez parler à une personne ; quelqu'un vous répondra ici.",
    reachPerson: (contact) => `Vous pouvez joindre une personne ici : ${contact}.`,
    booked: (when, attendee) => `Votre rendez-vous est réservé : ${when}, ${attendee}.`,
    calendarUnavailable:
      "Je ne peux pas confirmer cet horaire pour le moment : l'un des calendriers n'a pas pu être vérifié. Veuillez réessayer plus tard.",
    slotUnavailable: "Cet horaire n'est pas disponible.",
    slotTaken: "Cet horaire vient d'être pris.",
    cannotBook: (reason) => `Je n'ai pas pu réserver : ${reason}`,
    nextFreeTimes: (times) => `Les prochains créneaux libres sont : ${times.join(' ; ')}.`,
    noFreeTime: "Il n'y a aucun créneau libre dans la semaine qui suit.",
    cannotSuggest:
      "Je ne peux pas proposer d'autres horaires pour le moment : l'un des calendriers n'a pas pu être vérifié. Veuillez réessayer plus tard.",
    unavailable: "Cet assistant n'est pas disponible pour le moment. Veuillez réessayer plus tard.",
    tooFast: (seconds) => `Vous envoyez des messages trop rapidement ; veuillez patienter ${FR.seconds(seconds)}.`,
    dailyLimit: (seconds) =>
      `Vous avez utilisé tous vos messages du jour avec cet assistant ; veuillez réessayer dans environ ${FR.wait(seconds)}.`,
    failed: "Désolé, je n'ai pas pu répondre pour le moment. Veuillez réessayer dans un instant.",
    emptyAnswer: "Je n'ai pas trouvé de réponse à cela. Pourriez-vous reformuler votre question ?",
    greeting: 'Bonjour ! Posez-moi vos questions.',
  },
  es: {
    noAnswer: 'Lo siento, no he encontrado la respuesta a eso en la información de la que dispongo.',
    handoffTransfer: (contact) => `Le paso con una persona del equipo. Puede contactarla en ${contact}.`,
    handoffLog: 'He tomado nota de que quiere hablar con una persona.',
    handoffNotify: 'He avisado al equipo de que quiere hablar con una persona; alguien le responderá aquí.',
    reachPerson: (contact) => `Puede contactar con una persona en ${contact}.`,
    booked: (when, attendee) => `Su cita está reservada: ${when}, ${attendee}.`,
    calendarUnavailable:
      'Ahora mismo no puedo confirmar ese horario: no se ha podido comprobar uno de los calendarios. Inténtelo de nuevo más tarde.',
    slotUnavailable: 'Ese horario no está disponible.',
    slotTaken: 'Ese horario se acaba de ocupar.',
    cannotBook: (reason) => `No he podido reservarlo: ${reason}`,
    nextFreeTimes: (times) => `Los próximos horarios libres son: ${times.join('; ')}.`,
    noFreeTime: 'No hay ningún horario libre en la semana siguiente.',
    cannotSuggest:
      'Ahora mismo no puedo proponer otros horarios: no se ha podido comprobar uno de los calendarios. Inténtelo de nuevo más tarde.',
    unavailable: 'Este asistente no está disponible en este momento. Inténtelo de nuevo más tarde.',
    tooFast: (seconds) => `Está enviando mensajes demasiado rápido; espere ${ES.seconds(seconds)}, por favor.`,
    dailyLimit: (seconds) =>
      `Ha agotado los mensajes de hoy con este asistente; inténtelo de nuevo dentro de aproximadamente ${ES.wait(seconds)}.`,
    failed: 'Lo siento, no he podido responder ahora mismo. Inténtelo de nuevo en un momento.',
    emptyAnswer: 'No he encontrado una respuesta a eso. ¿Podría formularlo de otra manera?',
    greeting: '¡Hola! Pregúnteme lo que necesite.',
  },
  it: {
    noAnswer: 'Mi dispiace, non ho trovato la risposta nelle informazioni di cui dispongo.',
    handoffTransfer: (contact) => `La passo a una persona del nostro team. Può contattarla a ${contact}.`,
    handoffLog: 'Ho preso nota che desidera parlare con una persona.',
    handoffNotify: 'Ho avvisato il team che desidera parlare con una persona; qualcuno le risponderà qui.',
    reachPerson: (contact) => `Può contattare una persona a ${contact}.`,
    booked: (when, attendee) => `Il suo appuntamento è prenotato: ${when}, ${attendee}.`,
    calendarUnavailable:
      "Al momento non posso confermare quell'orario: non è stato possibile controllare uno dei calendari. Riprovi più tardi.",
    slotUnavailable: "Quell'orario non è disponibile.",
    slotTaken: "Quell'orario è appena stato preso.",
    cannotBook: (reason) => `Non sono riuscito a prenotare: ${reason}`,
    nextFreeTimes: (times) => `I prossimi orari liberi sono: ${times.join('; ')}.`,
    noFreeTime: 'Non ci sono orari liberi nella settimana successiva.',
    cannotSuggest:
      'Al momento non posso proporre altri orari: non è stato possibile controllare uno dei calendari. Riprovi più tardi.',
    unavailable: 'Al momento questo assistente non è disponibile. Riprovi più tardi.',
    tooFast: (seconds) => `Sta inviando messaggi troppo velocemente; attenda ${IT.seconds(seconds)}, per favore.`,
    dailyLimit: (seconds) =>
      `Ha esaurito i messaggi di oggi con questo assistente; riprovi tra circa ${IT.wait(seconds)}.`,
    failed: 'Mi dispiace, al momento non sono riuscito a rispondere. Riprovi tra poco.',
    emptyAnswer: 'Non sono riuscito a trovare una risposta. Potrebbe riformulare la domanda?',
    greeting: 'Salve! Mi chieda pure qualsiasi cosa.',
  },
  pt: {
    noAnswer: 'Desculpe, não encontrei a resposta para isso nas informações de que disponho.',
    handoffTransfer: (contact) => `Vou encaminhá-lo para uma pessoa da equipe. Pode contatá-la em ${contact}.`,
    handoffLog: 'Anotei que gostaria de falar com uma pessoa.',
    handoffNotify: 'Avisei a equipe de que gostaria de falar com uma pessoa; alguém lhe responderá aqui.',
    reachPerson: (contact) => `Pode falar com uma pessoa em ${contact}.`,
    booked: (when, attendee) => `O seu horário está marcado: ${when}, ${attendee}.`,
    calendarUnavailable:
      'Não consigo confirmar esse horário agora: não foi possível verificar um dos calendários. Tente novamente mais tarde.',
    slotUnavailable: 'Esse horário não está disponível.',
    slotTaken: 'Esse horário acabou de ser ocupado.',
    cannotBook: (reason) => `Não consegui fazer a marcação: ${reason}`,
    nextFreeTimes: (times) => `Os próximos horários livres são: ${times.join('; ')}.`,
    noFreeTime: 'Não há nenhum horário livre na semana seguinte.',
    cannotSuggest:
      'Não consigo sugerir outros horários agora: não foi possível verificar um dos calendários. Tente novamente mais tarde.',
    unavailable: 'Este assistente não está disponível no momento. Tente novamente mais tarde.',
    tooFast: (seconds) => `Está enviando mensagens rápido demais; aguarde ${PT.seconds(seconds)}, por favor.`,
    dailyLimit: (seconds) =>
      `Atingiu o limite de mensagens de hoje com este assistente; tente novamente daqui a cerca de ${PT.wait(seconds)}.`,
    failed: 'Desculpe, não consegui responder agora. Tente novamente daqui a pouco.',
    emptyAnswer: 'Não consegui encontrar uma resposta para isso. Poderia reformular a pergunta?',
    greeting: 'Olá! Pergunte o que quiser.',
  },
  nl: {
    noAnswer: 'Sorry, ik heb het antwoord daarop niet gevonden in de informatie die ik heb.',
    handoffTransfer: (contact) => `Ik verbind u door met een medewerker. U kunt die bereiken via ${contact}.`,
    handoffLog: 'Ik heb genoteerd dat u iemand wilt spreken.',
    handoffNotify: 'Ik heb het team laten weten dat u iemand wilt spreken; er neemt hier iemand contact met u op.',
    reachPerson: (contact) => `U kunt een medewerker bereiken via ${contact}.`,
    booked: (when, attendee) => `Uw afspraak staat vast: ${when}, ${attendee}.`,
    calendarUnavailable:
      "Ik kan dat tijdstip nu niet bevestigen: een van de agenda's kon niet worden gecontroleerd. Probeer het later opnieuw.",
    slotUnavailable: 'Dat tijdstip is niet beschikbaar.',
    slotTaken: 'Dat tijdstip is net bezet.',
    cannotBook: (reason) => `Ik kon dat niet boeken: ${reason}`,
    nextFreeTimes: (times) => `De eerstvolgende vrije tijden zijn: ${times.join('; ')}.`,
    noFreeTime: 'Er is geen vrije tijd in de week daarna.',
    cannotSuggest:
      "Ik kan nu geen andere tijden voorstellen: een van de agenda's kon niet worden gecontroleerd. Probeer het later opnieuw.",
    unavailable: 'Deze assistent is op dit moment niet beschikbaar. Probeer het later opnieuw.',
    tooFast: (seconds) => `U stuurt berichten te snel; wacht alstublieft ${NL.seconds(seconds)}.`,
    dailyLimit: (seconds) =>
      `U heeft de berichten van vandaag met deze assistent opgebruikt; probeer het over ongeveer ${NL.wait(seconds)} opnieuw.`,
    failed: 'Sorry, ik kon nu geen antwoord geven. Probeer het zo meteen opnieuw.',
    emptyAnswer: 'Ik kon daar geen antwoord op vinden. Kunt u het anders formuleren?',
    greeting: 'Hallo! Stel gerust uw vraag.',
  },
  ru: {
    noAnswer: 'К сожалению, в имеющейся у меня информации нет ответа на этот вопрос.',
    handoffTransfer: (contact) => `Передаю вас сотруднику. Контакт для связи: ${contact}.`,
    handoffLog: 'Я отметил, что вы хотите поговорить с сотрудником.',
    handoffNotify: 'Я сообщил команде, что вы хотите поговорить с сотрудником; вам ответят здесь.',
    reachPerson: (contact) => `Контакт для связи с сотрудником: ${contact}.`,
    booked: (when, attendee) => `Вы записаны: ${when}, ${attendee}.`,
    calendarUnavailable:
      'Сейчас я не могу подтвердить это время: один из календарей не удалось проверить. Пожалуйста, попробуйте позже.',
    slotUnavailable: 'Это время недоступно.',
    slotTaken: 'Это время только что заняли.',
    cannotBook: (reason) => `Не удалось записать: ${reason}`,
    nextFreeTimes: (times) => `Ближайшее свободное время: ${times.join('; ')}.`,
    noFreeTime: 'В течение следующей недели свободного времени нет.',
    cannotSuggest:
      'Сейчас я не могу предложить другое время: один из календарей не удалось проверить. Пожалуйста, попробуйте позже.',
    unavailable: 'Этот ассистент сейчас недоступен. Пожалуйста, попробуйте позже.',
    tooFast: (seconds) => `Вы отправляете сообщения слишком часто; пожалуйста, подождите ${RU.seconds(seconds)}.`,
    dailyLimit: (seconds) =>
      `Вы исчерпали сегодняшний лимит сообщений для этого ассистента; пожалуйста, попробуйте снова примерно через ${RU.wait(seconds)}.`,
    failed: 'Извините, сейчас я не смог ответить. Пожалуйста, попробуйте ещё раз чуть позже.',
    emptyAnswer: 'Мне не удалось найти ответ на это. Не могли бы вы сформулировать вопрос иначе?',
    greeting: 'Здравствуйте! Задайте мне любой вопрос.',
  },
  uk: {
    noAnswer: 'На жаль, в інформації, яка в мене є, немає відповіді на це питання.',
    handoffTransfer: (contact) => `Передаю вас співробітнику. Контакт для зв'язку: ${contact}.`,
    handoffLog: 'Я зазначив, що ви хочете поговорити зі співробітником.',
    handoffNotify: 'Я повідомив команду, що ви хочете поговорити зі співробітником; вам відповідять тут.',
    reachPerson: (contact) => `Контакт для зв'язку зі співробітником: ${contact}.`,
    booked: (when, attendee) => `Вас записано: ${when}, ${attendee}.`,
    calendarUnavailable:
      'Зараз я не можу підтвердити цей час: один із календарів не вдалося перевірити. Будь ласка, спробуйте пізніше.',
    slotUnavailable: 'Цей час недоступний.',
    slotTaken: 'Цей час щойно зайняли.',
    cannotBook: (reason) => `Не вдалося записати: ${reason}`,
    nextFreeTimes: (times) => `Найближчий вільний час: ${times.join('; ')}.`,
    noFreeTime: 'Протягом наступного тижня вільного часу немає.',
    cannotSuggest:
      'Зараз я не можу запропонувати інший час: один із календарів не вдалося перевірити. Будь ласка, спробуйте пізніше.',
    unavailable: 'Цей асистент зараз недоступний. Будь ласка, спробуйте пізніше.',
    tooFast: (seconds) => `Ви надсилаєте повідомлення занадто часто; будь ласка, зачекайте ${UK.seconds(seconds)}.`,
    dailyLimit: (seconds) =>
      `Ви вичерпали сьогоднішній ліміт повідомлень для цього асистента; будь ласка, спробуйте знову приблизно через ${UK.wait(seconds)}.`,
    failed: 'Вибачте, зараз я не зміг відповісти. Будь ласка, спробуйте ще раз трохи згодом.',
    emptyAnswer: 'Мені не вдалося знайти відповідь на це. Чи могли б ви сформулювати запитання інакше?',
    greeting: 'Вітаю! Поставте мені будь-яке запитання.',
  },
  pl: {
    noAnswer: 'Przepraszam, w informacjach, którymi dysponuję, nie ma odpowiedzi na to pytanie.',
    handoffTransfer: (contact) => `Przekazuję rozmowę do konsultanta. Kontakt: ${contact}.`,
    handoffLog: 'Zanotowałem, że chcesz porozmawiać z konsultantem.',
    handoffNotify: 'Przekazałem zespołowi, że chcesz porozmawiać z konsultantem; ktoś odpowie Ci tutaj.',
    reachPerson: (contact) => `Kontakt z konsultantem: ${contact}.`,
    booked: (when, attendee) => `Termin zarezerwowany: ${when}, ${attendee}.`,
    calendarUnavailable:
      'Nie mogę teraz potwierdzić tego terminu: nie udało się sprawdzić jednego z kalendarzy. Spróbuj ponownie później.',
    slotUnavailable: 'Ten termin jest niedostępny.',
    slotTaken: 'Ten termin został właśnie zajęty.',
    cannotBook: (reason) => `Nie udało się zarezerwować: ${reason}`,
    nextFreeTimes: (times) => `Najbliższe wolne terminy: ${times.join('; ')}.`,
    noFreeTime: 'W kolejnym tygodniu nie ma wolnych terminów.',
    cannotSuggest:
      'Nie mogę teraz zaproponować innych terminów: nie udało się sprawdzić jednego z kalendarzy. Spróbuj ponownie później.',
    unavailable: 'Ten asystent jest teraz niedostępny. Spróbuj ponownie później.',
    tooFast: (seconds) => `Wysyłasz wiadomości zbyt szybko; poczekaj ${PL.seconds(seconds)}.`,
    dailyLimit: (seconds) =>
      `Wykorzystano dzisiejszy limit wiadomości z tym asystentem; spróbuj ponownie za mniej więcej ${PL.wait(seconds)}.`,
    failed: 'Przepraszam, nie udało mi się teraz odpowiedzieć. Spróbuj ponownie za chwilę.',
    emptyAnswer: 'Nie udało mi się znaleźć odpowiedzi na to pytanie. Czy możesz sformułować je inaczej?',
    greeting: 'Cześć! Zapytaj mnie o cokolwiek.',
  },
  tr: {
    noAnswer: 'Üzgünüm, elimdeki bilgilerde bunun cevabını bulamadım.',
    handoffTransfer: (contact) => `Sizi bir çalışanımıza aktarıyorum. İletişim: ${contact}.`,
    handoffLog: 'Bir çalışanla görüşmek istediğinizi not ettim.',
    handoffNotify: 'Bir çalışanla görüşmek istediğinizi ekibe ilettim; size buradan dönüş yapılacak.',
    reachPerson: (contact) => `Bir çalışanımıza şuradan ulaşabilirsiniz: ${contact}.`,
    booked: (when, attendee) => `Randevunuz alındı: ${when}, ${attendee}.`,
    calendarUnavailable:
      'Bu saati şu anda onaylayamıyorum: takvimlerden biri kontrol edilemedi. Lütfen daha sonra tekrar deneyin.',
    slotUnavailable: 'Bu saat müsait değil.',
    slotTaken: 'Bu saat az önce alındı.',
    cannotBook: (reason) => `Randevu alınamadı: ${reason}`,
    nextFreeTimes: (times) => `Sonraki boş saatler: ${times.join('; ')}.`,
    noFreeTime: 'Sonraki bir hafta içinde boş saat yok.',
    cannotSuggest:
      'Şu anda başka bir saat öneremiyorum: takvimlerden biri kontrol edilemedi. Lütfen daha sonra tekrar deneyin.',
    unavailable: 'Bu asistan şu anda kullanılamıyor. Lütfen daha sonra tekrar deneyin.',
    tooFast: (seconds) => `Çok hızlı mesaj gönderiyorsunuz; lütfen ${TR.seconds(seconds)} bekleyin.`,
    dailyLimit: (seconds) =>
      `Bu asistanla bugünkü mesaj hakkınızı doldurdunuz; lütfen yaklaşık ${TR.wait(seconds)} sonra tekrar deneyin.`,
    failed: 'Üzgünüm, şu anda yanıt veremedim. Lütfen biraz sonra tekrar deneyin.',
    emptyAnswer: 'Buna bir yanıt bulamadım. Sorunuzu başka bir şekilde sorabilir misiniz?',
    greeting: 'Merhaba! Bana istediğinizi sorabilirsiniz.',
  },
  ar: {
    noAnswer: 'عذرًا، لم أجد إجابة عن ذلك في المعلومات المتوفرة لدي.',
    handoffTransfer: (contact) => `سأحوّلك إلى أحد أعضاء الفريق. يمكنك التواصل معه عبر ${contact}.`,
    handoffLog: 'لقد سجّلت رغبتك في التحدث إلى شخص.',
    handoffNotify: 'لقد أبلغت الفريق برغبتك في التحدث إلى شخص؛ سيرد عليك أحدهم هنا.',
    reachPerson: (contact) => `يمكنك التواصل مع أحد أعضاء الفريق عبر ${contact}.`,
    booked: (when, attendee) => `تم حجز موعدك: ${when}، ${attendee}.`,
    calendarUnavailable: 'لا يمكنني تأكيد هذا الموعد الآن: تعذّر التحقق من أحد التقويمات. يُرجى المحاولة مرة أخرى لاحقًا.',
    slotUnavailable: 'هذا الموعد غير متاح.',
    slotTaken: 'تم حجز هذا الموعد للتو.',
    cannotBook: (reason) => `تعذّر الحجز: ${reason}`,
    nextFreeTimes: (times) => `أقرب المواعيد المتاحة: ${times.join('؛ ')}.`,
    noFreeTime: 'لا يوجد موعد متاح في الأسبوع التالي.',
    cannotSuggest: 'لا يمكنني اقتراح مواعيد أخرى الآن: تعذّر التحقق من أحد التقويمات. يُرجى المحاولة مرة أخرى لاحقًا.',
    unavailable: 'هذا المساعد غير متاح حاليًا. يُرجى المحاولة مرة أخرى لاحقًا.',
    tooFast: (seconds) => `أنت ترسل الرسائل بسرعة كبيرة؛ يُرجى الانتظار ${AR.seconds(seconds)}.`,
    dailyLimit: (seconds) =>
      `لقد استنفدت رسائل اليوم مع هذا المساعد؛ يُرجى المحاولة مرة أخرى بعد حوالي ${AR.wait(seconds)}.`,
    failed: 'عذرًا، لم أتمكن من الإجابة الآن. يُرجى المحاولة مرة أخرى بعد قليل.',
    emptyAnswer: 'لم أتمكن من إيجاد إجابة عن ذلك. هل يمكنك صياغة سؤالك بطريقة أخرى؟',
    greeting: 'مرحبًا! اسألني عن أي شيء.',
  },
  ja: {
    noAnswer: '申し訳ありませんが、私が持っている情報の中にその答えは見つかりませんでした。',
    handoffTransfer: (contact) => `担当者におつなぎします。連絡先：${contact}`,
    handoffLog: '担当者との会話をご希望であることを記録しました。',
    handoffNotify: '担当者との会話をご希望であることをチームに伝えました。こちらで担当者からご連絡します。',
    reachPerson: (contact) => `担当者の連絡先：${contact}`,
    booked: (when, attendee) => `${attendee}様、${when}でご予約を承りました。`,
    calendarUnavailable:
      '現在この時間を確定できません。カレンダーの一つを確認できませんでした。しばらくしてからもう一度お試しください。',
    slotUnavailable: 'その時間はご予約いただけません。',
    slotTaken: 'その時間はたった今埋まりました。',
    cannotBook: (reason) => `予約できませんでした：${reason}`,
    nextFreeTimes: (times) => `次の空き時間：${times.join('、')}`,
    noFreeTime: 'その後1週間に空き時間はありません。',
    cannotSuggest:
      '現在ほかの時間をご提案できません。カレンダーの一つを確認できませんでした。しばらくしてからもう一度お試しください。',
    unavailable: '現在このアシスタントはご利用いただけません。しばらくしてからもう一度お試しください。',
    tooFast: (seconds) => `メッセージの送信間隔が短すぎます。${JA.seconds(seconds)}ほどお待ちください。`,
    dailyLimit: (seconds) =>
      `本日このアシスタントに送信できるメッセージの上限に達しました。約${JA.wait(seconds)}後にもう一度お試しください。`,
    failed: '申し訳ありませんが、ただいま回答できませんでした。しばらくしてからもう一度お試しください。',
    emptyAnswer: 'その質問への回答が見つかりませんでした。別の言い方でお尋ねいただけますか？',
    greeting: 'こんにちは！何でもお気軽にお尋ねください。',
  },
  zh: {
    noAnswer: '抱歉，我在现有的信息中没有找到这个问题的答案。',
    handoffTransfer: (contact) => `我将为您转接人工客服。联系方式：${contact}`,
    handoffLog: '我已记下您希望与人工客服沟通。',
    handoffNotify: '我已通知团队您希望与人工客服沟通，稍后会有人在这里回复您。',
    reachPerson: (contact) => `人工客服联系方式：${contact}`,
    booked: (when, attendee) => `${attendee}，您的预约已确认：${when}。`,
    calendarUnavailable: '目前无法确认该时间：有一个日历无法查询。请稍后再试。',
    slotUnavailable: '该时间不可预约。',
    slotTaken: '该时间刚刚被预约。',
    cannotBook: (reason) => `无法预约：${reason}`,
    nextFreeTimes: (times) => `接下来的空闲时间：${times.join('；')}。`,
    noFreeTime: '之后一周内没有空闲时间。',
    cannotSuggest: '目前无法推荐其他时间：有一个日历无法查询。请稍后再试。',
    unavailable: '此助手目前无法使用，请稍后再试。',
    tooFast: (seconds) => `您发送消息太快了，请等待${ZH.seconds(seconds)}。`,
    dailyLimit: (seconds) => `您今天与此助手的消息额度已用完，请在大约${ZH.wait(seconds)}后再试。`,
    failed: '抱歉，我暂时无法回答，请稍后再试。',
    emptyAnswer: '我没能给出这个问题的答案。您能换个方式问吗？',
    greeting: '您好！有什么问题尽管问我。',
  },
  'zh-Hant': {
    noAnswer: '抱歉，我在現有的資訊中沒有找到這個問題的答案。',
    handoffTransfer: (contact) => `我將為您轉接人工客服。聯絡方式：${contact}`,
    handoffLog: '我已記下您希望與人工客服溝通。',
    handoffNotify: '我已通知團隊您希望與人工客服溝通，稍後會有人在這裡回覆您。',
    reachPerson: (contact) => `人工客服聯絡方式：${contact}`,
    booked: (when, attendee) => `${attendee}，您的預約已確認：${when}。`,
    calendarUnavailable: '目前無法確認該時間：有一個行事曆無法查詢。請稍後再試。',
    slotUnavailable: '該時間無法預約。',
    slotTaken: '該時間剛剛被預約。',
    cannotBook: (reason) => `無法預約：${reason}`,
    nextFreeTimes: (times) => `接下來的空閒時間：${times.join('；')}。`,
    noFreeTime: '之後一週內沒有空閒時間。',
    cannotSuggest: '目前無法推薦其他時間：有一個行事曆無法查詢。請稍後再試。',
    unavailable: '此助理目前無法使用，請稍後再試。',
    tooFast: (seconds) => `您傳送訊息太快了，請等待${ZH_HANT.seconds(seconds)}。`,
    dailyLimit: (seconds) => `您今天與此助理的訊息額度已用完，請在大約${ZH_HANT.wait(seconds)}後再試。`,
    failed: '抱歉，我暫時無法回答，請稍後再試。',
    emptyAnswer: '我沒能給出這個問題的答案。您能換個方式問嗎？',
    greeting: '您好！有什麼問題儘管問我。',
  },
  ko: {
    noAnswer: '죄송합니다. 제가 가진 정보에서 그에 대한 답을 찾지 못했습니다.',
    handoffTransfer: (contact) => `담당자에게 연결해 드리겠습니다. 연락처: ${contact}`,
    handoffLog: '상담원과의 대화를 원하신다는 내용을 기록했습니다.',
    handoffNotify: '상담원과의 대화를 원하신다고 팀에 알렸습니다. 담당자가 이곳에서 답변드릴 예정입니다.',
    reachPerson: (contact) => `상담원 연락처: ${contact}`,
    booked: (when, attendee) => `${attendee}님, 예약이 완료되었습니다: ${when}.`,
    calendarUnavailable:
      '지금은 해당 시간을 확정할 수 없습니다. 캘린더 중 하나를 확인하지 못했습니다. 잠시 후 다시 시도해 주세요.',
    slotUnavailable: '해당 시간은 예약할 수 없습니다.',
    slotTaken: '해당 시간이 방금 예약되었습니다.',
    cannotBook: (reason) => `예약하지 못했습니다: ${reason}`,
    nextFreeTimes: (times) => `다음 예약 가능 시간: ${times.join('; ')}.`,
    noFreeTime: '그 후 일주일 동안 예약 가능한 시간이 없습니다.',
    cannotSuggest:
      '지금은 다른 시간을 제안할 수 없습니다. 캘린더 중 하나를 확인하지 못했습니다. 잠시 후 다시 시도해 주세요.',
    unavailable: '지금은 이 어시스턴트를 이용할 수 없습니다. 잠시 후 다시 시도해 주세요.',
    tooFast: (seconds) => `메시지를 너무 빠르게 보내고 있습니다. ${KO.seconds(seconds)} 후에 다시 보내 주세요.`,
    dailyLimit: (seconds) =>
      `오늘 이 어시스턴트에 보낼 수 있는 메시지를 모두 사용했습니다. 약 ${KO.wait(seconds)} 후에 다시 시도해 주세요.`,
    failed: '죄송합니다. 지금은 답변하지 못했습니다. 잠시 후 다시 시도해 주세요.',
    emptyAnswer: '그 질문에 대한 답을 찾지 못했습니다. 다르게 표현해 주시겠어요?',
    greeting: '안녕하세요! 무엇이든 물어보세요.',
  },
};

/**
 * The texts of a bot language ('de-AT' → German, 'zh-TW' → Traditional
 * Chinese); English for 'auto' and languages not in the table.
 */
export function botTexts(language: string | undefined): BotTexts {
  return BOT_TEXTS[textsLanguage(language ?? 'auto')] ?? ENGLISH;
}

/** What the bot says when its sources do not hold the answer (English; see NO_ANSWER_TEXTS). */
export const NO_ANSWER_TEXT = ENGLISH.noAnswer;

/** The no-answer sentence per language of BOT_TEXTS: the offline provider says it verbatim; isNoAnswer recognises any. */
export const NO_ANSWER_TEXTS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(BOT_TEXTS).map(([language, texts]) => [language, texts.noAnswer]),
);

/** The no-answer sentence for a bot language; English for 'auto' and for languages not in the table. */
export function noAnswerText(language: string | undefined): string {
  return botTexts(language).noAnswer;
}
