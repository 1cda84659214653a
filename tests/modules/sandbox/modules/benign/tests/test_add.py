from adapter import add


def test_add_sums():
    assert add(a=2, b=3) == {"sum": 5}


def test_add_is_wrong_on_purpose():
    assert add(a=1, b=1) == {"sum": 3}, "one and one"
