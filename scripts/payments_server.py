"""localstripe, the stateful stand-in for Stripe's API, with what the local stack needs
of the real service and localstripe lacks:

- Accounts. Stripe sends an account's events only to that account's webhook
  endpoints; localstripe sends every event to every endpoint. Here an object belongs to
  the secret key that created it, an endpoint registered with `api_key` gets only that
  key's events, so the stacks of tests running side by side never see each other's.
- Stripe.js's `confirmCardPayment(clientSecret, {payment_method: {card}})`. localstripe's
  fake Stripe.js ignores the card and only answers 3-D Secure; here the page's card is
  sent as Stripe.js sends it (`POST /v1/payment_intents/{id}/confirm` with the
  publishable key, the client secret and `payment_method_data`), the intent confirmed
  with it, and a declined test card (4000000000000002, 4000000000000341) declines.
- Listing the refunds of an intent that was never charged answers an empty list, as
  Stripe does (localstripe fails with a 500).
- Memory only, as moto: localstripe would pickle its whole store to /tmp on every POST.
- A refund sends `charge.refunded` (the charge, with `refunded` and `amount_refunded`),
  as Stripe does for every refund, whether made through the API or in the dashboard (a
  dashboard refund is a plain `POST /v1/refunds` with the secret key here).
- Disputes: Stripe's test card 4000000000000259 pays, then its charge is disputed: a
  `dispute` object, `charge.dispute.created`, and the charge's `disputed` set (read
  through the intent's `latest_charge`). localstripe knows no disputes.
- Events about a charge or a dispute go to the account of the intent they belong to.
- An intent's amount changed before it is paid (`POST /v1/payment_intents/{id}` with
  `amount`) stays a number, as in Stripe (localstripe would keep the form's text).
- Webhooks go out `--webhook-delay` seconds after the event (localstripe: 1 s), once,
  without retries (Stripe retries for days; a test that drops one relies on reconcile).
- Idempotency keys, as Stripe honours them (localstripe ignores them): a POST with an
  `Idempotency-Key` header that repeats a key the same account (secret key) used in the
  last 24 hours is not done again; it answers what the first request answered, the
  same status and body, with `Idempotent-Replayed: true`. The same key with another
  path or other parameters (the body as sent) is a 400 `idempotency_error`, as at
  Stripe. A request made while the first with its key is still running waits for it
  and gets its answer (Stripe answers that one 409 and it is retried: the outcome is
  the same). So a refund sent twice with one key is one refund here too.

    python scripts/payments_server.py --port 8420
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import re
import socket
import time

import aiohttp
from aiohttp import web

from localstripe import resources, server, webhooks
from localstripe.errors import UserError

# An object's id -> the secret key that created it; an endpoint id -> its key.
OWNERS = {}
ENDPOINT_KEYS = {}
WEBHOOK_DELAY = [0.2]

resources.store.dump_to_disk = lambda: None

_charging_is_declined = resources.PaymentMethod._charging_is_declined
# Stripe's generic decline card declines the charge itself.
resources.PaymentMethod._charging_is_declined = lambda pm: _charging_is_declined(pm) or (
    pm.type == 'card' and pm._card_number == '4000000000000002')

_list_refunds = resources.Refund._api_list_all


def list_refunds(url, charge=None, payment_intent=None, limit=None, starting_after=None):
    if charge is None and payment_intent is not None:
        if resources.PaymentIntent._api_retrieve(payment_intent).latest_charge is None:
            return resources.List(url)
    return _list_refunds(url, charge=charge, payment_intent=payment_intent, limit=limit,
                         starting_after=starting_after)


resources.Refund._api_list_all = staticmethod(list_refunds)

# Stripe's test card whose payment is disputed once it succeeded.
DISPUTED_CARD = '4000000000000259'
# A disputed charge's id -> its dispute.
DISPUTES = {}


class Dispute(resources.StripeObject):
    """A dispute, as Stripe shows one just opened by the card holder's bank."""
    object = 'dispute'
    _id_prefix = 'dp_'

    def __init__(self, charge):
        super().__init__()
        self.charge = charge.id
        self.payment_intent = charge.payment_intent
        self.amount = charge.amount
        self.currency = charge.currency
        self.reason = 'fraudulent'
        self.status = 'needs_response'
        self.metadata = {}


resources.Charge.disputed = property(lambda charge: charge.id in DISPUTES)

_intent_succeeded = resources.PaymentIntent._on_success


def intent_succeeded(intent):
    _intent_succeeded(intent)
    method = resources.PaymentMethod._api_retrieve(intent.payment_method)
    if getattr(method, '_card_number', None) == DISPUTED_CARD:
        charge = intent.latest_charge
        DISPUTES[charge.id] = Dispute(charge)
        webhooks.schedule_webhook(resources.Event('charge.dispute.created', DISPUTES[charge.id]))


resources.PaymentIntent._on_success = intent_succeeded

_create_refund = resources.Refund._api_create


def create_refund(**data):
    refund = _create_refund(**data)
    webhooks.schedule_webhook(resources.Event('charge.refunded', resources.Charge._api_retrieve(refund.charge)))
    return refund


resources.Refund._api_create = staticmethod(create_refund)

_update_intent = resources.PaymentIntent._api_update


def update_intent(id, **data):
    if 'amount' in data:
        data['amount'] = resources.try_convert_to_int(data['amount'])
        if type(data['amount']) is not int or data['amount'] <= 0:
            raise UserError(400, 'Bad request')
    return _update_intent(id, **data)


resources.PaymentIntent._api_update = staticmethod(update_intent)

STRIPE_JS_CONFIRM = r"""
(function () {
  const localStripe = Stripe;
  Stripe = (apiKey) => {
    const stripe = localStripe(apiKey);
    const authenticate = stripe.confirmCardPayment;
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const card = data && data.payment_method && data.payment_method.card;
      if (!card) return authenticate(clientSecret, data);
      const pi = clientSecret.match(/^(pi_\w+)_secret_/)[1];
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/v1/payment_intents/${pi}/confirm`, {
        method: 'POST',
        body: JSON.stringify({
          key: apiKey, client_secret: clientSecret,
          payment_method_data: {type: 'card', card: card.value ? card.value.card : card},
        }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 200 || body.error) return {error: body.error || {message: 'payment failed'}};
      if (body.status === 'requires_action') return authenticate(clientSecret, data);
      return {paymentIntent: body};
    };
    return stripe;
  };
})();
"""


# (secret key, idempotency key) -> (when, what was asked, status, body, content type).
IDEMPOTENT = {}
IDEMPOTENT_LOCKS = {}
IDEMPOTENCY_TTL = 24 * 3600


async def idempotent(request, handler, key):
    """The handler's answer, or the first answer given to the same account's same key."""
    idempotency_key = request.headers.get('Idempotency-Key')
    if not key or request.method != 'POST' or not idempotency_key:
        return await handler(request)
    now = time.monotonic()
    for stale in [k for k, v in IDEMPOTENT.items() if now - v[0] > IDEMPOTENCY_TTL]:
        del IDEMPOTENT[stale]
        if not IDEMPOTENT_LOCKS[stale].locked():
            del IDEMPOTENT_LOCKS[stale]
    slot = (key, idempotency_key)
    asked = hashlib.sha256(request.path.encode() + b'?' + await request.read()).hexdigest()
    lock = IDEMPOTENT_LOCKS.setdefault(slot, asyncio.Lock())
    async with lock:
        kept = IDEMPOTENT.get(slot)
        if kept is None:
            response = await handler(request)
            IDEMPOTENT[slot] = (now, asked, response.status, response.body, response.content_type)
            return response
    _, first_asked, status, body, content_type = kept
    if first_asked != asked:
        return server.json_response({'error': {
            'type': 'idempotency_error',
            'message': 'Keys for idempotent requests can only be used with the same parameters '
                       'they were first used with. Try using a key other than '
                       f"'{idempotency_key}' if you meant to execute a different request."}}, status=400)
    return web.Response(status=status, body=body, content_type=content_type,
                        headers={'Idempotent-Replayed': 'true', 'Idempotency-Key': idempotency_key})


def secret_key(request):
    header = request.headers.get('Authorization', '')
    if header.startswith('Bearer sk_'):
        return header[len('Bearer '):]
    return None


@web.middleware
async def accounts(request, handler):
    path = request.path
    if request.method == 'GET' and path == '/js.stripe.com/v3/':
        response = await handler(request)
        return web.Response(text=response.text + STRIPE_JS_CONFIRM, content_type='application/javascript')
    if request.method == 'POST' and path.startswith('/_config/webhooks/'):
        data = await server.get_post_data(request) or {}
        if data.get('api_key'):
            ENDPOINT_KEYS[request.match_info.get('id') or path.rsplit('/', 1)[1]] = data['api_key']
        return await handler(request)
    confirm = re.match(r'^/v1/payment_intents/(pi_\w+)/confirm$', path)
    if request.method == 'POST' and confirm and not secret_key(request):
        return confirm_with_card(confirm.group(1), await server.get_post_data(request, remove_auth=False) or {})
    key = secret_key(request)
    response = await idempotent(request, handler, key)
    if key and request.method == 'POST' and response.status == 200 and response.body:
        try:
            created = json.loads(response.body)
        except ValueError:
            created = {}
        if isinstance(created, dict) and 'id' in created:
            OWNERS.setdefault(created['id'], key)
    return response


def confirm_with_card(intent_id, data):
    """A PaymentIntent confirmed from the page, as Stripe.js does it."""
    try:
        if not str(data.get('key', '')).startswith('pk_'):
            raise UserError(401, 'Unauthorized')
        intent = resources.PaymentIntent._api_retrieve(intent_id)
        if data.get('client_secret') != intent.client_secret:
            raise UserError(401, 'Unauthorized')
        method = data.get('payment_method_data') or {}
        card = method.get('card') or {}
        if method.get('type') != 'card':
            raise UserError(400, 'Bad request')
        if intent.status not in ('requires_payment_method', 'requires_confirmation'):
            raise UserError(400, 'This PaymentIntent cannot be confirmed in its state: ' + intent.status,
                            {'code': 'payment_intent_unexpected_state'})
        pm = resources.PaymentMethod._api_create(type='card', card={
            k: card.get(k) for k in ('number', 'exp_month', 'exp_year', 'cvc')})
        intent.payment_method = pm.id
        intent.latest_charge = None
        intent._confirm(on_failure_now=intent._report_failure)
        return server.json_response(intent._export())
    except UserError as e:
        return e.to_response()


async def send_webhook(event):
    """localstripe's delivery, to the endpoints of the account the object belongs to."""
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode('utf-8')
    signed_payload = b'%d.%s' % (event.created, payload)
    obj = event.data['object']
    owner = OWNERS.get(obj.get('id')) or OWNERS.get(obj.get('payment_intent'))
    await asyncio.sleep(WEBHOOK_DELAY[0])
    logger = logging.getLogger('aiohttp.access')
    for endpoint_id, webhook in list(webhooks._webhooks.items()):
        if webhook.events is not None and event.type not in webhook.events:
            continue
        if ENDPOINT_KEYS.get(endpoint_id) not in (None, owner):
            continue
        signature = hmac.new(webhook.secret.encode('utf-8'), signed_payload, hashlib.sha256).hexdigest()
        headers = {'Content-Type': 'application/json; charset=utf-8',
                   'Stripe-Signature': 't=%d,v1=%s' % (event.created, signature)}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(webhook.url, data=payload, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=10)) as r:
                    logger.info('webhook %s %s to %s: %d', event.type, event.id, webhook.url, r.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            logger.info('webhook %s %s to %s failed: %s', event.type, event.id, webhook.url, e)


webhooks._send_webhook = send_webhook
server.app.middlewares.insert(0, accounts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8420)
    parser.add_argument('--webhook-delay', type=float, default=0.2)
    args = parser.parse_args()
    WEBHOOK_DELAY[0] = args.webhook_delay
    logger = logging.getLogger('aiohttp.access')
    logger.setLevel(logging.WARNING)
    logger.addHandler(logging.StreamHandler())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    web.run_app(server.app, sock=sock, access_log=None, print=None)


if __name__ == '__main__':
    main()
