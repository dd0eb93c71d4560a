// cards.js: the safety cards a counsellor can send (secure.js sendCard) and
// the page renders in the young person's language: id -> number of steps,
// whose words are i18n.js's card.<id>.title and card.<id>.1 .. n.
export const CARDS = Object.freeze({ sextortion: 5, takedown: 3 });
