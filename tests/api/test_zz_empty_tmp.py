def test_empty(client):
    pass
