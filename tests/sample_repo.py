"""A small multi-language repository with distinctive, findable bugs."""

SAMPLE_FILES: dict[str, str | bytes] = {
    "README.md": "# shop\nA toy shop used by localizer's tests.\n",
    "shop/__init__.py": "",
    "shop/cart.py": '''"""Shopping cart."""

from .pricing import apply_coupon


class Cart:
    """Items a customer intends to buy."""

    def __init__(self):
        self.items = []
        self.coupon = None

    def add_item(self, sku, quantity=1, unit_price=0.0):
        """Add ``quantity`` units of ``sku``."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.items.append((sku, quantity, unit_price))

    def remove_item(self, sku):
        self.items = [item for item in self.items if item[0] != sku]

    def total(self):
        """Total price after the coupon discount."""
        subtotal = sum(quantity * price for _, quantity, price in self.items)
        discounted = apply_coupon(subtotal, self.coupon)
        if self.coupon:
            discounted = apply_coupon(discounted, self.coupon)
        return round(discounted, 2)
''',
    "shop/pricing.py": '''"""Coupons and discounts."""


def apply_coupon(amount, coupon):
    """Return ``amount`` reduced by the coupon's percentage discount."""
    if not coupon:
        return amount
    return amount * (1 - coupon.percent / 100.0)
''',
    "shop/payment.py": '''"""Card payments."""


def validate_amount(amount):
    if amount <= 0:
        raise ValueError("amount must be positive")
    return amount


def charge_card(card_number, amount):
    """Charge a card; refunds pass a zero amount."""
    validate_amount(amount)
    return {"card": card_number[-4:], "charged": amount}
''',
    "shop/inventory.py": '''"""Stock levels per warehouse."""

STOCK = {}


def reserve_stock(sku, quantity):
    """Reserve units for an order, failing when the warehouse runs out."""
    available = STOCK.get(sku, 0)
    if available < quantity:
        raise RuntimeError(f"not enough stock for {sku}")
    STOCK[sku] = available - quantity


def release_stock(sku, quantity):
    STOCK[sku] = STOCK.get(sku, 0) + quantity
''',
    "shop/utils/dates.py": '''"""Date helpers."""

from datetime import datetime


def parse_iso_date(text):
    """Parse an ISO-8601 timestamp (the timezone offset is silently dropped)."""
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
''',
    "server/Router.java": '''package server;

import java.util.HashMap;
import java.util.Map;

/** Maps URL paths to handlers. */
public class Router {
    private final Map<String, Handler> routes = new HashMap<>();

    /** Register a handler for an exact path. */
    public void addRoute(String path, Handler handler) {
        routes.put(path, handler);
    }

    /** Find the handler for a request path; trailing slashes are not normalized. */
    public Handler matchRoute(String path) {
        Handler handler = routes.get(path);
        if (handler == null) {
            throw new RouteNotFoundException(path);
        }
        return handler;
    }
}
''',
    "web/src/formatPrice.js": '''// Price formatting for the storefront.

/** Format an amount of money with its currency symbol. */
export function formatPrice(amount, currency) {
  const symbol = currency === "EUR" ? "\\u20ac" : "$";
  return symbol + Math.floor(amount * 100) / 100;
}

export class PriceTag {
  constructor(amount) {
    this.amount = amount;
  }

  render() {
    return `<span class="price">${formatPrice(this.amount, "USD")}</span>`;
  }
}
''',
    "web/src/orders.ts": '''// Client for the orders API.

export interface Order {
  id: string;
  total: number;
}

export class OrderClient {
  constructor(private baseUrl: string) {}

  /** Fetch one page of orders; the page parameter is ignored by mistake. */
  async fetchOrders(page: number): Promise<Order[]> {
    const response = await fetch(`${this.baseUrl}/orders`);
    return response.json();
  }
}
''',
    "svc/queue.go": '''package svc

// Queue is a FIFO of pending jobs.
type Queue struct {
	items []string
}

// Push appends a job to the queue.
func (q *Queue) Push(item string) {
	q.items = append(q.items, item)
}

// Pop removes the oldest job; it panics with index out of range on an empty queue.
func (q *Queue) Pop() string {
	item := q.items[0]
	q.items = q.items[1:]
	return item
}
''',
    "lib/mailer.rb": '''# Sends order confirmation emails.
class Mailer
  # Configure the SMTP host used for delivery.
  def self.configure(host)
    @host = host
  end

  # Deliver a confirmation email to the customer address.
  def deliver(address, body)
    raise ArgumentError, "address missing" if address.nil?
    "sent to #{address}"
  end
end
''',
    "app/Invoice.php": '''<?php

class Invoice
{
    /** Compute the VAT for the invoice lines; reduced rates are ignored. */
    public function calculateTax($lines)
    {
        $total = 0;
        foreach ($lines as $line) {
            $total += $line["amount"] * 0.2;
        }
        return $total;
    }
}
''',
    "tests/test_cart.py": '''from shop.cart import Cart


def test_total_with_coupon_discount_applied_twice():
    cart = Cart()
    cart.add_item("apple", 2, 1.0)
    assert cart.total() == 2.0
''',
    "assets/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
}
