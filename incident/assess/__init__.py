"""Who is affected, how grave it is, which regimes apply and every obligation's clock."""
