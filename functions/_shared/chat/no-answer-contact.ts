import { codePointLength } from '../text/code-points.ts';
import { BOT_TEXTS, botTexts } from './bot-texts.ts';

/** What a `transfer` bot appends to its no-answer sentence: how to reach a person, in `language`. */
export function noAnswerContact(language: string, contact: string): string {
  return ` ${botTexts(language).reachPerson(contact)}`;
}

/**
 * The most characters (code points, as the database counts them)
 * noAnswerContact takes in any language: the room a `transfer` bot's answer
 * keeps for it, so that the answer with its contact is still storable.
 */
export function noAnswerContactRoom(contact: string): number {
  return Math.max(...Object.keys(BOT_TEXTS).map((language) => codePointLength(noAnswerContact(language, contact))));
}
