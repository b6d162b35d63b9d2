/**
 * The data behind `npm run bench:chat`: a shop's knowledge base (20 documents
 * of 10 pages on as many topics, boilerplate and all, as a real shop's PDFs
 * read), a catalog, the questions its customers ask, and the orgs, bots,
 * members and API key that hold them. Written with the chat tests' fixtures
 * (tests/support/chat-fixtures.ts), so the chunks carry the offline lexical
 * embeddings and retrieval finds them with no network.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../functions/_shared/db.ts';
import {
  type ChatOrg,
  createApiKey,
  createBot,
  createChatOrg,
  createDocument,
  createProduct,
} from '../../tests/support/chat-fixtures.ts';
import { signUserToken } from '../local/keys.ts';

interface Topic {
  document: string;
  title: string;
  /** The sentence that answers `question`; on the document's first page. */
  fact: string;
  /** Further sentences on the topic, spread over the other pages. */
  details: string[];
  question: string;
}

const TOPICS: Topic[] = [
  {
    document: 'opening-hours.pdf',
    title: 'Opening hours',
    fact: 'Our stores are open Monday to Friday from 9 am to 6 pm and on Saturday from 10 am to 4 pm.',
    details: [
      'On public holidays the stores stay closed, except for the flagship store in the city centre.',
      'During the December sales the opening hours are extended until 8 pm on weekdays.',
      'The customer service phone line keeps the same hours as the stores.',
    ],
    question: 'What are your opening hours on Saturday?',
  },
  {
    document: 'shipping.pdf',
    title: 'Shipping and delivery',
    fact: 'Standard shipping takes 3 to 5 business days and is free for orders over 50 euros.',
    details: [
      'Express shipping delivers the next business day for orders placed before 2 pm.',
      'Large appliances are delivered by our own drivers within a two hour time slot.',
      'Orders below 50 euros pay a shipping fee of 4.95 euros.',
    ],
    question: 'How long does standard shipping take?',
  },
  {
    document: 'returns.pdf',
    title: 'Returns',
    fact: 'You can return any item within 30 days of delivery for a full refund.',
    details: [
      'Returned items must be complete and in their original packaging.',
      'Opened software, gift cards and custom orders cannot be returned.',
      'Print the free return label from your account and drop the parcel at any post office.',
    ],
    question: 'How many days do I have to return an item?',
  },
  {
    document: 'refunds.pdf',
    title: 'Refunds',
    fact: 'Refunds are paid to the original payment method within 14 days after we receive the returned item.',
    details: [
      'Shipping costs are refunded when the whole order is returned.',
      'A refund for a bank transfer payment needs the account holder name and IBAN.',
      'You receive an email as soon as the refund has been issued.',
    ],
    question: 'When are refunds paid?',
  },
  {
    document: 'warranty.pdf',
    title: 'Warranty',
    fact: 'All electronics carry a two year warranty covering manufacturing defects.',
    details: [
      'The warranty does not cover accidental damage, water damage or normal wear.',
      'An extended warranty of up to five years can be bought within 30 days of purchase.',
      'Keep your receipt or order confirmation as proof of purchase for warranty claims.',
    ],
    question: 'How long is the warranty on electronics?',
  },
  {
    document: 'payment.pdf',
    title: 'Payment methods',
    fact: 'We accept Visa, Mastercard, PayPal, Apple Pay and bank transfer.',
    details: [
      'Card payments are charged when the order ships, not when it is placed.',
      'Orders paid by bank transfer ship once the payment has arrived.',
      'Cash on delivery is not available.',
    ],
    question: 'Which payment methods do you accept?',
  },
  {
    document: 'gift-cards.pdf',
    title: 'Gift cards',
    fact: 'Gift cards are valid for three years and can be used online and in every store.',
    details: [
      'Gift cards are available in amounts from 10 to 500 euros.',
      'The remaining balance stays on the card after a partial purchase.',
      'Lost gift cards can be blocked and replaced with the original receipt.',
    ],
    question: 'How long are gift cards valid?',
  },
  {
    document: 'loyalty-program.pdf',
    title: 'Loyalty program',
    fact: 'Members of the loyalty program earn one point per euro spent, and 100 points are worth a 5 euro voucher.',
    details: [
      'Joining the loyalty program is free and takes a minute in the app.',
      'Points expire 24 months after they were earned.',
      'Members get early access to the seasonal sales.',
    ],
    question: 'How many points do I earn in the loyalty program?',
  },
  {
    document: 'repairs.pdf',
    title: 'Repair service',
    fact: 'Repairs at our service centre usually take 7 working days, and the quote is free.',
    details: [
      'Repairs under warranty cost nothing, including the return shipping.',
      'For repairs outside the warranty we ask for your approval of the quote first.',
      'A replacement device can be lent to you while your phone is being repaired.',
    ],
    question: 'How long do repairs take?',
  },
  {
    document: 'installation.pdf',
    title: 'Installation service',
    fact: 'Our technicians install washing machines and dishwashers for a flat fee of 79 euros.',
    details: [
      'The installation fee includes connecting water and power and a test run.',
      'We also take the packaging with us after the installation.',
      'Built-in appliances need an appointment with a kitchen fitter.',
    ],
    question: 'How much does the installation of a washing machine cost?',
  },
  {
    document: 'international-shipping.pdf',
    title: 'International shipping',
    fact: 'We ship to all EU countries, Switzerland and Norway, and international delivery takes 5 to 10 business days.',
    details: [
      'Customs duties for Switzerland and Norway are paid by the recipient.',
      'Large appliances are only delivered within the country.',
      'International returns are accepted within the same 30 days.',
    ],
    question: 'Do you ship to Switzerland?',
  },
  {
    document: 'click-and-collect.pdf',
    title: 'Click and collect',
    fact: 'Click and collect orders are ready for pickup within two hours in any store.',
    details: [
      'You receive a text message when the order is ready at the pickup desk.',
      'Orders are held for seven days before they are returned to stock.',
      'Bring the order number and an ID to collect the order.',
    ],
    question: 'When is a click and collect order ready for pickup?',
  },
  {
    document: 'price-match.pdf',
    title: 'Price match guarantee',
    fact: 'Our price match guarantee matches the price of any authorised retailer within 14 days of your purchase.',
    details: [
      'The price match covers identical products in stock at the other retailer.',
      'Marketplace sellers and auction sites are excluded from the price match.',
      'Show the offer at the checkout or send a link to customer service.',
    ],
    question: 'Do you offer a price match guarantee?',
  },
  {
    document: 'student-discount.pdf',
    title: 'Student discount',
    fact: 'Students get a 10 percent student discount on laptops and tablets with a valid student card.',
    details: [
      'The student discount cannot be combined with other promotions.',
      'Online, the student discount is applied after verifying your student email address.',
      'Teachers get the same discount with a staff card.',
    ],
    question: 'Is there a student discount on laptops?',
  },
  {
    document: 'order-tracking.pdf',
    title: 'Order tracking',
    fact: 'You can track your order with the tracking number in the shipping confirmation email.',
    details: [
      'The order status in your account is updated every hour.',
      'If the tracking shows no progress for three days, contact customer service.',
      'Deliveries by our own drivers are announced by text message the day before.',
    ],
    question: 'How can I track my order?',
  },
  {
    document: 'privacy.pdf',
    title: 'Privacy',
    fact: 'We keep your personal data only while your account is active and never sell your personal data to third parties.',
    details: [
      'You can download or delete your data from the account settings.',
      'Newsletter consent can be withdrawn at any time with one click.',
      'Payment details are processed by our payment provider and not stored by us.',
    ],
    question: 'Do you sell my personal data?',
  },
  {
    document: 'trade-in.pdf',
    title: 'Trade-in',
    fact: 'Trade in your old phone or laptop and receive store credit based on its condition.',
    details: [
      'The trade-in value is confirmed after a technician has checked the device.',
      'Devices must be reset to factory settings before the trade-in.',
      'Store credit from a trade-in is valid for one year.',
    ],
    question: 'Can I trade in my old phone?',
  },
  {
    document: 'financing.pdf',
    title: 'Financing',
    fact: 'Purchases over 300 euros can be paid in 12 monthly instalments with zero interest.',
    details: [
      'Financing is offered by our partner bank and subject to a credit check.',
      'The first instalment is due one month after delivery.',
      'Paying off the balance early costs nothing.',
    ],
    question: 'Can I pay in monthly instalments?',
  },
  {
    document: 'business-accounts.pdf',
    title: 'Business accounts',
    fact: 'Business customers can open a business account with invoice payment and 30 day payment terms.',
    details: [
      'Business accounts get a dedicated account manager from 10,000 euros of yearly orders.',
      'Prices for business customers are shown without VAT.',
      'Several employees can order on the same business account.',
    ],
    question: 'Can business customers pay by invoice?',
  },
  {
    document: 'recycling.pdf',
    title: 'Recycling',
    fact: 'We take back old appliances free of charge when we deliver a new one.',
    details: [
      'Small electronics and batteries can be dropped in the recycling box in every store.',
      'Old appliances must be disconnected and emptied before the delivery.',
      'We recycle over 90 percent of the materials of returned appliances.',
    ],
    question: 'Do you take back old appliances?',
  },
];

/** Boilerplate every page carries, as real policy documents do: it makes retrieval rank, not just filter. */
const BOILERPLATE = [
  'Customer service can be reached by phone at 0800 123 456 and by email at help@shop.example.',
  'All prices include VAT unless stated otherwise.',
  'These terms apply to purchases in our stores and in the online shop.',
  'We may update this document; the version on our website is the one that applies.',
  'Questions about an order are answered fastest with the order number at hand.',
  'Our stores are accessible by wheelchair and have free parking.',
  'Employees in the store can look up online orders and their status.',
  'Special offers are valid while stocks last.',
  'The online shop is available around the clock, including weekends.',
  'Some services are provided by our partners on our behalf.',
  'For complaints you can also use the contact form on our website.',
  'Products shown in photos may differ slightly from the delivered item.',
  'We answer emails within one business day.',
  'Our newsletter informs you about new products and offers.',
  'The company is registered in the commercial register under number HRB 12345.',
  'Orders placed on weekends are processed on the next business day.',
];

export const PAGES_PER_DOCUMENT = 10;
const BOILERPLATE_PER_PAGE = 12;

/** One page of a topic's document: a heading, two sentences on the topic (the answer on page 1), then boilerplate. */
function pageText(topic: Topic, topicIndex: number, page: number): string {
  const own = page === 1
    ? [topic.fact, topic.details[0]]
    : [topic.details[page % topic.details.length], topic.details[(page + 1) % topic.details.length]];
  const filler = Array.from(
    { length: BOILERPLATE_PER_PAGE },
    (_, index) => BOILERPLATE[(topicIndex * 7 + page * 3 + index) % BOILERPLATE.length],
  );
  return [`${topic.title}, page ${page} of ${PAGES_PER_DOCUMENT}.`, ...own, ...filler].join(' ');
}

const PRODUCTS = [
  { name: 'Wireless Headphones X1', description: 'Noise cancelling headphones with 30 hours of battery.', price: 199, sku: 'WH-X1' },
  { name: 'Espresso Machine Barista Pro', description: 'Dual boiler espresso machine with a steam wand.', price: 649, sku: 'EM-BP' },
  { name: 'Robot Vacuum R7', description: 'Robot vacuum cleaner with lidar mapping and a self-emptying base.', price: 499, sku: 'RV-R7' },
  { name: 'Ultrabook 14 Air', description: 'Light 14 inch laptop with 16 GB memory and a 1 TB drive.', price: 1299, sku: 'UB-14A' },
  { name: 'Smartphone Nova 5', description: 'Phone with a 6.5 inch display and a triple camera.', price: 799, sku: 'SP-N5' },
  { name: '4K Monitor 27 inch', description: 'IPS monitor with USB-C power delivery and a height adjustable stand.', price: 379, sku: 'MN-27K' },
  { name: 'Washing Machine EcoWash 8', description: 'Front loader for 8 kg with an energy class A rating.', price: 599, sku: 'WM-EW8' },
  { name: 'Dishwasher SilentClean 60', description: 'Built-in dishwasher with 14 place settings and 42 dB.', price: 549, sku: 'DW-SC60' },
  { name: 'Tablet Slate 11', description: 'Tablet with an 11 inch display and pen support.', price: 449, sku: 'TB-S11' },
  { name: 'Smartwatch Pulse 3', description: 'Fitness watch with GPS, heart rate and 7 days of battery.', price: 249, sku: 'SW-P3' },
  { name: 'Bluetooth Speaker Boom Mini', description: 'Waterproof speaker with 12 hours of play time.', price: 59, sku: 'BS-BM' },
  { name: 'Electric Kettle Steel 1.7', description: 'Stainless steel kettle with temperature control.', price: 49, sku: 'EK-S17' },
];
/** Accessories, to give the catalog a realistic size beside the named products. */
const ACCESSORY_KINDS = ['Charging Cable', 'Protective Case', 'Screen Protector', 'Power Adapter', 'Carry Bag'];
const ACCESSORY_FITS = ['Nova 5', 'Slate 11', 'Ultrabook 14', 'Pulse 3'];

const PRODUCT_QUESTIONS = [
  'How much are the Wireless Headphones X1?',
  'What does the Robot Vacuum R7 cost?',
  'Is the Espresso Machine Barista Pro in stock?',
  'Do you sell a 4K monitor?',
];

/** What the bench asks, in turn: one question per document, and a few about products. */
export const QUESTIONS: string[] = [...TOPICS.map((topic) => topic.question), ...PRODUCT_QUESTIONS];

export interface BenchTenant {
  org: ChatOrg;
  /** The bot on the offline model, and one on an OpenAI model (answered by the stub). */
  offlineBot: { id: string; slug: string };
  openAiBot: { id: string; slug: string };
  /** Members' access tokens to rotate through (see addMembers). */
  memberTokens: string[];
  apiKey: string;
  chunks: number;
  products: number;
}

/**
 * Members besides the fixture's four, each with a token. A signed-in user may
 * chat 60 times a minute (chat_prepare's `user:<id>` bucket, fixed in SQL),
 * so the bench spreads its hundreds of SSE requests over many members, as a
 * team sharing a playground would.
 */
async function addMembers(sql: Sql, orgId: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  await sql.begin(async (tx) => {
    for (const id of ids) {
      await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
               values (${id}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                       ${`member-${id.slice(0, 8)}@chat.bench`}, '{}', '{}')`;
      await tx`insert into public.memberships (org_id, user_id, role) values (${orgId}, ${id}, 'member')`;
    }
  });
  return Promise.all(ids.map((id) => signUserToken({ id, email: `member-${id.slice(0, 8)}@chat.bench` }, { expiresInSeconds: 3600 })));
}

/** A topic's document for an org: every page a chunk. */
async function addDocuments(sql: Sql, orgId: string, topics: number): Promise<number> {
  for (const [index, topic] of TOPICS.slice(0, topics).entries()) {
    const pages = Array.from({ length: PAGES_PER_DOCUMENT }, (_, page) => pageText(topic, index, page + 1));
    await createDocument(sql, orgId, topic.document, pages);
  }
  return topics * PAGES_PER_DOCUMENT;
}

async function addProducts(sql: Sql, orgId: string): Promise<number> {
  for (const [index, product] of PRODUCTS.entries()) {
    await createProduct(sql, orgId, { ...product, stock: (index * 7) % 13 });
  }
  let accessories = 0;
  for (const kind of ACCESSORY_KINDS) {
    for (const fits of ACCESSORY_FITS) {
      accessories += 1;
      await createProduct(sql, orgId, {
        name: `${kind} for ${fits}`,
        description: `${kind} made to fit the ${fits}.`,
        price: 9 + accessories * 2,
        sku: `AC-${accessories}`,
        stock: accessories % 5,
      });
    }
  }
  return PRODUCTS.length + accessories;
}

/**
 * The measured org (every topic, the catalog, two bots, `members` extra
 * members, an API key allowed 10,000 requests a minute, the business plan so
 * hundreds of turns stay within the monthly chat tokens) and `otherOrgs`
 * orgs holding half the topics each, so the database is not the measured
 * org's alone.
 */
export async function seedBenchData(sql: Sql, options: { members: number; otherOrgs: number }): Promise<BenchTenant> {
  const org = await createChatOrg(sql, 'chat-bench');
  const chunks = await addDocuments(sql, org.id, TOPICS.length);
  const products = await addProducts(sql, org.id);
  const offlineBot = { id: await createBot(sql, org.id, { slug: 'support' }), slug: 'support' };
  const openAiBot = { id: await createBot(sql, org.id, { slug: 'support-gpt', model: 'gpt-4o-mini' }), slug: 'support-gpt' };
  const memberTokens = [org.tokens.member, ...(await addMembers(sql, org.id, options.members))];
  const key = await createApiKey(sql, org);
  await sql`update public.api_keys set rate_limit_per_minute = 10000 where id = ${key.id}`;
  // The free plan's 200,000 chat tokens a month last a few hundred turns of these prompts.
  await sql`update public.subscriptions set plan_id = 'business' where org_id = ${org.id} and status = 'active'`;

  for (let index = 0; index < options.otherOrgs; index++) {
    const other = await createChatOrg(sql, `chat-bench-other-${index + 1}`);
    await addDocuments(sql, other.id, TOPICS.length / 2);
    await addProducts(sql, other.id);
    await createBot(sql, other.id, { slug: 'support' });
  }
  return { org, offlineBot, openAiBot, memberTokens, apiKey: key.key, chunks, products };
}
