import pytest
from shop.cli import main
from shop.pricing import Item, apply_percent_off, parse_item, subtotal_cents


def test_subtotal_adds_line_totals():
    assert subtotal_cents([Item("apple", 120, 3), Item("pear", 80)]) == 440


def test_percent_off_rounds_the_discount_down():
    assert apply_percent_off(999, 10) == 900
    assert apply_percent_off(1000, 0) == 1000


@pytest.mark.parametrize("percent", [-1, 101])
def test_percent_off_is_bounded(percent):
    with pytest.raises(ValueError):
        apply_percent_off(100, percent)


def test_parse_item_reads_the_command_line_form():
    assert parse_item("apple:120:3") == Item("apple", 120, 3)
    assert parse_item("pear:80") == Item("pear", 80, 1)


def test_cli_prints_the_subtotal(capsys):
    assert main(["apple:120:3", "pear:80:2"]) == 0
    assert capsys.readouterr().out.strip() == "520"
