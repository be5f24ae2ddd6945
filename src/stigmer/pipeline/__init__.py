"""Operations as named lists of small steps run inside one transaction."""
